"""Checkpoints in the artifact store: published whole or not at all (a publisher SIGKILLed
mid-upload leaves no half checkpoint that passes for the latest), pruned on both
backends, and fetched through a worker's cache keyed by checksum."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from common.storage import ChecksumCache, StorageError
from tests.common.storage_helpers import raw_keys

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "experiments/7"

#: A child that publishes a folder and is SIGKILLed after the first two files went up.
CRASHING_PUBLISHER = r"""
import os, signal, sys
from pathlib import Path
import common.storage.local as local, common.storage.s3 as s3
from common.storage import open_store

real = local.folder_files
def dying(src):
    for i, item in enumerate(real(src)):
        if i == 2:
            os.kill(os.getpid(), signal.SIGKILL)
        yield item
local.folder_files = s3.folder_files = dying
open_store(sys.argv[1]).publish_folder(sys.argv[2], Path(sys.argv[3]))
"""


def checkpoint_folder(where: Path, task: int, tag: str = "") -> Path:
    """A task-<k> folder like continual_core's, with four files (two in a sub-folder)."""
    where.mkdir(parents=True)
    (where / "state.npz").write_bytes(f"state {task}{tag}".encode() * 5000)
    (where / "history.json").write_text(f'{{"task": {task}, "tag": "{tag}"}}')
    (where / "extra").mkdir()
    (where / "extra" / "a.txt").write_text(f"a{task}{tag}")
    (where / "extra" / "b.txt").write_text(f"b{task}{tag}")
    return where


def publish_and_crash(store, key: str, src: Path) -> None:
    url = str(store.root) if store.is_local else store.url_for()
    done = subprocess.run([sys.executable, "-c", CRASHING_PUBLISHER, url, key, str(src)],
                          check=False, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == -9, done.stderr  # killed, not a clean failure


def test_publish_then_read_back(store, tmp_path: Path) -> None:
    src = checkpoint_folder(tmp_path / "w" / "task-1", 1)
    files = store.publish_folder(f"{PREFIX}/task-1", src)
    assert sorted(files) == ["extra/a.txt", "extra/b.txt", "history.json", "state.npz"]
    assert files["state.npz"].size == (src / "state.npz").stat().st_size
    assert sorted(store.published(f"{PREFIX}/task-1")) == sorted(files)
    assert store.published(f"{PREFIX}/task-2") is None
    assert store.published_folders(PREFIX) == ["task-1"]
    # A published folder lists like plain files under its key, nothing else of it.
    assert [o.key for o in store.list(PREFIX)] == [f"{PREFIX}/task-1/{r}" for r in sorted(files)]
    with store.open_published(f"{PREFIX}/task-1", "history.json") as f:
        assert f.read() == (src / "history.json").read_bytes()
    for o in store.list(PREFIX):  # what `list` shows, `get_bytes` and `info` can read
        rel = o.key.removeprefix(f"{PREFIX}/task-1/")
        assert store.get_bytes(o.key) == (src / rel).read_bytes()
        assert store.info(o.key).size == o.size

    latest = store.latest_checkpoint(PREFIX)
    assert (latest.task, latest.key) == (1, f"{PREFIX}/task-1")
    out = store.fetch_folder(latest.key, tmp_path / "resume" / "task-1")
    assert (out / "extra" / "b.txt").read_text() == "b1"
    assert sorted(p.name for p in out.parent.iterdir()) == ["task-1"]  # no staging left


def test_republish_replaces_the_whole_folder(store, tmp_path: Path) -> None:
    store.publish_folder(f"{PREFIX}/task-1", checkpoint_folder(tmp_path / "one", 1))
    again = checkpoint_folder(tmp_path / "two", 1, tag="again")
    (again / "extra" / "b.txt").unlink()
    store.publish_folder(f"{PREFIX}/task-1", again)
    files = store.published(f"{PREFIX}/task-1")
    assert sorted(files) == ["extra/a.txt", "history.json", "state.npz"]
    assert b'"again"' in store.get_bytes(f"{PREFIX}/task-1/history.json")
    with store.open_published(f"{PREFIX}/task-1", "extra/a.txt") as f:
        assert f.read() == b"a1again"
    assert len(store.list(PREFIX)) == 3


def test_a_publisher_killed_mid_upload_leaves_no_checkpoint(store, tmp_path: Path) -> None:
    store.publish_folder(f"{PREFIX}/task-1", checkpoint_folder(tmp_path / "w" / "task-1", 1))
    before = raw_keys(store)
    publish_and_crash(store, f"{PREFIX}/task-2", checkpoint_folder(tmp_path / "w" / "task-2", 2))

    assert len(raw_keys(store)) == len(before) + 2  # two files of task-2 did go up
    assert store.published(f"{PREFIX}/task-2") is None
    assert store.latest_checkpoint(PREFIX).task == 1  # the half checkpoint is not taken
    assert store.published_folders(PREFIX) == ["task-1"]
    assert not [o.key for o in store.list(PREFIX) if "task-2" in o.key]

    # Too young to be called garbage (the upload could still be going on) ...
    assert store.prune(PREFIX, keep=5) == []
    assert len(raw_keys(store)) == len(before) + 2
    # ... and once past the grace period, pruning removes it; task-1 is untouched.
    assert store.prune(PREFIX, keep=5, older_than_s=0) == []
    assert raw_keys(store) == before
    assert sorted(store.published(f"{PREFIX}/task-1")) == [
        "extra/a.txt", "extra/b.txt", "history.json", "state.npz"]


def test_a_publisher_killed_while_replacing_keeps_the_old_folder(store, tmp_path: Path) -> None:
    store.publish_folder(f"{PREFIX}/task-1", checkpoint_folder(tmp_path / "old", 1))
    publish_and_crash(store, f"{PREFIX}/task-1", checkpoint_folder(tmp_path / "new", 1, tag="new"))
    files = store.published(f"{PREFIX}/task-1")
    assert len(files) == 4
    with store.open_published(f"{PREFIX}/task-1", "extra/a.txt") as f:
        assert f.read() == b"a1"  # all old, nothing of the new one
    store.collect_garbage(PREFIX, older_than_s=0)
    assert len(raw_keys(store)) == 4 + (0 if store.is_local else 1)  # + the manifest


def test_prune_keeps_the_newest_checkpoints_and_the_model(store, tmp_path: Path) -> None:
    for k in (1, 2, 3, 10):
        store.publish_folder(f"{PREFIX}/task-{k}", checkpoint_folder(tmp_path / f"t{k}", k))
    store.put_bytes(f"{PREFIX}/model.keras", b"final")
    store.put_bytes(f"{PREFIX}/tensorboard/events.out", b"tb")
    store.publish_folder("experiments/8/task-1", checkpoint_folder(tmp_path / "other", 1))

    assert store.prune(PREFIX, keep=2) == [f"{PREFIX}/task-1", f"{PREFIX}/task-2"]
    assert [c.task for c in store.checkpoints(PREFIX)] == [3, 10]  # 10 > 3: by number
    assert store.get_bytes(f"{PREFIX}/model.keras") == b"final"
    assert store.exists(f"{PREFIX}/tensorboard/events.out")
    assert store.latest_checkpoint("experiments/8").task == 1  # another experiment: kept
    assert not [k for k in raw_keys(store) if "task-1/" in k and "experiments/7" in k]

    assert store.prune(PREFIX, keep=0) == [f"{PREFIX}/task-3", f"{PREFIX}/task-10"]
    assert store.latest_checkpoint(PREFIX) is None
    assert [o.key for o in store.list(PREFIX)] == [f"{PREFIX}/model.keras",
                                                  f"{PREFIX}/tensorboard/events.out"]
    with pytest.raises(ValueError):
        store.prune(PREFIX, keep=-1)


def test_continual_core_checkpoints_are_published_in_place(local_store, tmp_path: Path) -> None:
    """On the local store the worker's checkpoint folder IS the store: no copy."""
    checkpoint_folder(local_store.local_path(f"{PREFIX}/task-1"), 1)
    stale = local_store.local_path(f"{PREFIX}/.task-2-abc123")  # continual_core's staging
    stale.mkdir()
    (stale / "state.npz").write_bytes(b"half")
    files = local_store.publish_folder(f"{PREFIX}/task-1", local_store.local_path(f"{PREFIX}/task-1"))
    assert len(files) == 4
    assert local_store.latest_checkpoint(PREFIX).task == 1
    assert local_store.collect_garbage(PREFIX, older_than_s=0) == 1 and not stale.exists()


def test_the_cache_downloads_each_checksum_once(store, tmp_path: Path) -> None:
    data = os.urandom(100_000)
    sha = hashlib.sha256(data).hexdigest()
    assert store.put_bytes("datasets/mine.npz", data).sha256 == sha
    assert store.info("datasets/mine.npz").sha256 == (None if store.is_local else sha)
    cache = ChecksumCache(tmp_path / "cache")
    assert sha not in cache

    path = cache.fetch(store, "datasets/mine.npz", sha)
    assert path.read_bytes() == data and path == cache.path_for(sha) and sha in cache
    store.delete("datasets/mine.npz")  # the second fetch must not need the store
    assert cache.fetch(store, "datasets/mine.npz", sha) == path

    store.put_bytes("datasets/other.npz", b"not what the row says")
    with pytest.raises(StorageError, match="expected"):
        cache.fetch(store, "datasets/other.npz", "0" * 64)
    assert "0" * 64 not in cache
    assert [p.name for p in (tmp_path / "cache").rglob("*") if p.is_file()] == [sha]
    with pytest.raises(ValueError):
        cache.path_for("../../etc/passwd")


def test_fetch_folder_through_the_cache(s3_store, tmp_path: Path) -> None:
    s3_store.publish_folder(f"{PREFIX}/task-1", checkpoint_folder(tmp_path / "w", 1))
    cache = ChecksumCache(tmp_path / "cache")
    first = s3_store.fetch_folder(f"{PREFIX}/task-1", tmp_path / "a" / "task-1", cache)
    assert (first / "state.npz").read_bytes() == (tmp_path / "w" / "state.npz").read_bytes()
    assert len([p for p in (tmp_path / "cache").rglob("*") if p.is_file()]) == 4
    # A second worker folder: the objects are gone, yet every file comes from the cache.
    for key in raw_keys(s3_store):
        if "/.v-" in key:
            s3_store.client.delete_object(Bucket=s3_store.bucket, Key=key)
    second = s3_store.fetch_folder(f"{PREFIX}/task-1", tmp_path / "b" / "task-1", cache)
    assert (second / "extra" / "a.txt").read_text() == "a1"
