"""Uploaded datasets on a worker: before a job naming `user:<name>` trains, its file is
placed where the training core reads it (`continual_core.user_datasets.user_dataset_file`,
`<dataset cache>/user/<sha256>.npz`).

The file comes from the artifact store under `store.datasets.storage_key(sha256)`, through
a `ChecksumCache` (`<dataset cache>/sha256/`): downloaded once per host whatever the job or
the dataset's name, checked against the sha256 the resolved spec carries, and kept for the
next job. A store that is away is waited for (`EWC_DB_RETRY_S`, as checkpoints are); a
file that is gone fails the job with a message saying so.

The cache is bounded (`EWC_DATASET_CACHE_MB`): each use touches its file, and after each
download the least recently used files beyond the bound are removed with their
`user/<sha256>.npz` link, never the one this job is about to read nor one used on this
host in the last `RECENT_S` seconds (another worker slot may be about to load it).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from common.settings import Settings
from common.storage import ArtifactStore, ChecksumCache, NotInStore, StorageUnavailable
from continual_core.spec import ExperimentSpec
from continual_core.user_datasets import is_user, resolved, user_dataset_file
from store.datasets import storage_key
from worker.retry import retry

log = logging.getLogger("ewc.worker")

MIB = 1024 * 1024
#: A cached file used this recently is kept even beyond the bound: another slot on this
#: host may have placed it and not yet loaded it.
RECENT_S = 60.0


class UserDatasetMissing(RuntimeError):
    """The uploaded dataset a job names is no longer in the artifact store."""


def dataset_cache(settings: Settings) -> ChecksumCache:
    """This host's cache of uploaded dataset files, by sha256."""
    return ChecksumCache(settings.resolved_dataset_cache() / "sha256")


def prepare_dataset(
    spec: ExperimentSpec,
    settings: Settings,
    store: ArtifactStore,
    *,
    budget_s: float = 120.0,
    interrupt: threading.Event | None = None,
) -> Path | None:
    """The local file of the spec's uploaded dataset, downloaded if this host lacks it;
    None for a built-in dataset."""
    if not is_user(spec.dataset):
        return None
    checksum = resolved(spec).checksum
    dest = user_dataset_file(settings.resolved_dataset_cache(), checksum)
    cache = dataset_cache(settings)
    if dest.is_file() and cache.touch(checksum):  # touched: used now, pruned last
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    key, started = storage_key(checksum), time.monotonic()
    try:
        retry(lambda: cache.copy_to(store, key, checksum, dest), retry_on=(StorageUnavailable,),
              budget_s=budget_s, interrupt=interrupt)  # fmt: skip
    except NotInStore:
        raise UserDatasetMissing(
            f"dataset {spec.dataset}: its file (sha256 {checksum[:12]}…) is not in the artifact "
            f"store at {store.url_for(key)}; it was deleted; upload it again and resubmit"
        ) from None
    log.info("event=dataset_fetched dataset=%s sha256=%s source=%s seconds=%.2f", spec.dataset,
             checksum, store.url_for(key), time.monotonic() - started)  # fmt: skip
    prune_cache(settings, keep=checksum)
    return dest


def prune_cache(settings: Settings, *, keep: str, recent_s: float = RECENT_S) -> list[str]:
    """Bound this host's cache of uploaded datasets to `EWC_DATASET_CACHE_MB`: remove the
    least recently used files (and their `user/` links) beyond it, never `keep` (the
    current job's sha256). Returns the removed files' sha256, each logged."""
    cache, root = dataset_cache(settings), settings.resolved_dataset_cache()
    limit = int(settings.dataset_cache_mb * MIB)
    removed = cache.prune(limit, keep={keep}, recent_s=recent_s)
    for entry in removed:
        user_dataset_file(root, entry.sha256).unlink(missing_ok=True)
        log.info("event=dataset_cache_pruned sha256=%s bytes=%s last_used=%s limit_mb=%g",
                 entry.sha256, entry.size, time.strftime("%Y-%m-%dT%H:%M:%SZ",
                 time.gmtime(entry.used_at)), settings.dataset_cache_mb)  # fmt: skip
    return [e.sha256 for e in removed]
