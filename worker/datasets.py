"""Uploaded datasets on a worker: before a job naming `user:<name>` trains, its file is
placed where the training core reads it (`continual_core.user_datasets.user_dataset_file`,
`<dataset cache>/user/<sha256>.npz`).

The file comes from the artifact store under `store.datasets.storage_key(sha256)`, through
a `ChecksumCache` (`<dataset cache>/sha256/`): downloaded once per host whatever the job or
the dataset's name, checked against the sha256 the resolved spec carries, and kept for the
next job. A store that is away is waited for (`EWC_DB_RETRY_S`, as checkpoints are); a
file that is gone fails the job with a message saying so.
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
    if dest.is_file() and checksum in cache:
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
    return dest
