"""A worker's cache of uploaded datasets stays within `EWC_DATASET_CACHE_MB`: after each
download `prepare_dataset` removes the least recently used files and their `user/` links,
logs each, and never removes the file the job is about to read, even alone above the
bound. Real files: a local artifact store, the worker's own dataset folder; last uses are
set with `os.utime`, nothing waits."""

from __future__ import annotations

import hashlib
import logging
import os
import time
from pathlib import Path

import pytest

from common.settings import Settings
from common.storage import open_store
from continual_core.spec import ExperimentSpec
from continual_core.user_datasets import user_dataset_file
from store.datasets import storage_key
from worker.datasets import dataset_cache, prepare_dataset

KIB = 1024


def spec_for(sha: str) -> ExperimentSpec:
    info = {"checksum": sha, "num_classes": 2, "input_shape": [1, 4, 1]}
    return ExperimentSpec.model_validate({"dataset": "user:x", "user_dataset": info})


@pytest.fixture
def host(tmp_path: Path):
    """(settings with a 3 KiB bound, the store, a function storing n KiB → its sha256)."""
    settings = Settings(_env_file=None, data_dir=tmp_path / "host",
                        dataset_cache=tmp_path / "host" / "datasets",
                        dataset_cache_mb=3 * KIB / (1024 * 1024))  # fmt: skip
    store = open_store(tmp_path / "artifacts")

    def put(kib: int) -> str:
        data = os.urandom(kib * KIB)
        sha = hashlib.sha256(data).hexdigest()
        store.put_bytes(storage_key(sha), data)
        return sha

    return settings, store, put


def age(settings: Settings, sha: str, days: float) -> None:
    when = time.time() - days * 86400
    os.utime(dataset_cache(settings).path_for(sha), (when, when))


def test_each_download_prunes_the_least_recently_used_beyond_the_bound(host, caplog) -> None:
    settings, store, put = host
    root = settings.resolved_dataset_cache()
    a, b, c = put(1), put(1), put(1)
    for sha, days in ((a, 3), (b, 2), (c, 1)):
        prepare_dataset(spec_for(sha), settings, store)
        age(settings, sha, days)
    assert {e.sha256 for e in dataset_cache(settings).entries()} == {a, b, c}  # 3 KiB: fits

    prepare_dataset(spec_for(a), settings, store)  # a cache hit: a is now the newest
    d = put(1)
    with caplog.at_level(logging.INFO, logger="ewc.worker"):
        dest = prepare_dataset(spec_for(d), settings, store)
    assert dest == user_dataset_file(root, d) and dest.is_file()
    assert [e.sha256 for e in dataset_cache(settings).entries()][-2:] == [a, d]
    assert b not in dataset_cache(settings)  # the least recently used went ...
    assert not user_dataset_file(root, b).exists()  # ... with the training core's link
    assert {c, a, d} <= {e.sha256 for e in dataset_cache(settings).entries()}
    pruned = [r.getMessage() for r in caplog.records if "dataset_cache_pruned" in r.getMessage()]
    assert len(pruned) == 1 and f"sha256={b}" in pruned[0] and "bytes=1024" in pruned[0]


def test_the_jobs_own_file_is_kept_even_alone_above_the_bound(host) -> None:
    settings, store, put = host
    root = settings.resolved_dataset_cache()
    small = put(1)
    prepare_dataset(spec_for(small), settings, store)
    age(settings, small, 1)
    big = put(5)  # alone larger than the 3 KiB bound
    dest = prepare_dataset(spec_for(big), settings, store)
    assert dest.is_file() and big in dataset_cache(settings)
    assert small not in dataset_cache(settings) and not user_dataset_file(root, small).exists()
    # and the next job on it reads it from the cache (the store may have lost it)
    store.delete(storage_key(big))
    assert prepare_dataset(spec_for(big), settings, store) == dest
