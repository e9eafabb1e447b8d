"""A `ChecksumCache` bounded by size on real files: a hit marks its entry used (mtime),
`prune` removes the least recently used first until the bound holds, never an entry it is
told to keep nor one used within `recent_s`, and ignores downloads in progress. Last uses
are set with `os.utime`, so no test waits or depends on the clock's speed."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from common.storage import ChecksumCache, open_store

DAY = 86400.0


def filled(tmp_path: Path, sizes: dict[str, int]) -> tuple[ChecksumCache, dict[str, str]]:
    """A cache holding one object per name (of that many bytes), fetched from a local
    store; each entry's last use is `index` days ago in reverse order (the first name the
    oldest). Returns the cache and name → sha256."""
    store, cache = open_store(tmp_path / "store"), ChecksumCache(tmp_path / "cache")
    shas, now = {}, time.time()
    for age, (name, size) in zip(range(len(sizes), 0, -1), sizes.items(), strict=True):
        data = os.urandom(size)
        shas[name] = hashlib.sha256(data).hexdigest()
        store.put_bytes(f"datasets/{name}.npz", data)
        path = cache.fetch(store, f"datasets/{name}.npz", shas[name])
        os.utime(path, (now - age * DAY, now - age * DAY))
    return cache, shas


def test_prune_removes_the_least_recently_used_until_the_bound_holds(tmp_path: Path) -> None:
    cache, sha = filled(tmp_path, {"a": 4000, "b": 3000, "c": 2000, "d": 1000})
    assert [e.sha256 for e in cache.entries()] == [sha["a"], sha["b"], sha["c"], sha["d"]]
    assert cache.size() == 10_000

    assert cache.prune(10_000) == []  # at the bound: nothing to do
    removed = cache.prune(6_500)
    assert [(e.sha256, e.size) for e in removed] == [(sha["a"], 4000)]
    assert sha["a"] not in cache and not removed[0].path.exists()
    assert cache.size() == 6000

    removed = cache.prune(1_000)  # b and c go; d is all that fits
    assert [e.sha256 for e in removed] == [sha["b"], sha["c"]]
    assert [e.sha256 for e in cache.entries()] == [sha["d"]]


def test_a_hit_marks_its_entry_used_so_it_is_pruned_last(tmp_path: Path) -> None:
    cache, sha = filled(tmp_path, {"old": 1000, "mid": 1000, "new": 1000})
    store = open_store(tmp_path / "store")
    store.delete("datasets/old.npz")  # the hit must come from the cache, not the store
    path = cache.fetch(store, "datasets/old.npz", sha["old"])
    assert path.stat().st_mtime > time.time() - DAY / 2  # touched now
    assert [e.sha256 for e in cache.prune(1000)] == [sha["mid"], sha["new"]]
    assert cache.touch(sha["old"]) and not cache.touch(sha["mid"])


def test_prune_never_removes_kept_or_recently_used_entries(tmp_path: Path) -> None:
    cache, sha = filled(tmp_path, {"job": 5000, "a": 1000, "b": 1000})
    # the job's own file is the oldest and alone above the bound: kept, the others go
    removed = cache.prune(0, keep={sha["job"]})
    assert {e.sha256 for e in removed} == {sha["a"], sha["b"]}
    assert [e.sha256 for e in cache.entries()] == [sha["job"]]

    cache, sha = filled(tmp_path / "two", {"a": 1000, "b": 1000, "c": 1000})
    cache.touch(sha["b"])  # used just now, e.g. by another worker slot about to load it
    removed = cache.prune(0, recent_s=600)
    assert {e.sha256 for e in removed} == {sha["a"], sha["c"]}
    assert sha["b"] in cache


def test_prune_ignores_downloads_in_progress_and_foreign_files(tmp_path: Path) -> None:
    cache, sha = filled(tmp_path, {"a": 1000})
    partial = cache.path_for(sha["a"]).with_name(f".{'e' * 64}.0123456789ab")
    partial.write_bytes(b"x" * 5000)
    stray = cache.folder / "README"
    stray.write_text("not an entry")
    assert [e.sha256 for e in cache.entries()] == [sha["a"]]
    assert [e.sha256 for e in cache.prune(0)] == [sha["a"]]
    assert partial.exists() and stray.exists()
    assert ChecksumCache(tmp_path / "none").prune(0) == []  # no folder yet: nothing to do
