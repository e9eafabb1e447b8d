"""A worker's per-process caches of the data (`continual_core.tasks.StreamCache`) and the
checkpoints written behind the training (`continual_core.checkpoint.CheckpointWriter`):
the same arrays and the same files as without them, read-only where shared, whole on disk
when `train()` reports the next epoch, returns or raises."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from continual_core.checkpoint import CheckpointWriter, latest_checkpoint, save_checkpoint, snapshot
from continual_core.compiled import LearnerCache
from continual_core.datasets import load_dataset
from continual_core.events import Callback, EpochEnd, StopRequested, TaskEnd
from continual_core.spec import ExperimentSpec
from continual_core.tasks import StreamCache, make_tasks, permutations, stream_key
from continual_core.trainer import train

BASE = {"dataset": "digits", "splits": 3, "epochs": 3, "batch_size": 128, "hidden": [16]}
UPDATES = ("permute", "increment", "switch", "full")


@pytest.mark.parametrize("update", UPDATES)
def test_cached_stream_holds_the_arrays_of_a_fresh_one(tmp_path: Path, update: str) -> None:
    spec = ExperimentSpec(**BASE, dataset_update=update, seed=4)
    cache = StreamCache()
    first = cache.stream(spec, tmp_path, load_dataset)
    again = cache.stream(spec.model_copy(update={"learning_rate": 0.01}), tmp_path, load_dataset)
    assert again is first and (cache.hits, cache.misses) == (1, 1)
    fresh = make_tasks(spec, load_dataset(spec, tmp_path))
    for kept, new in zip(first.tasks, fresh, strict=True):
        assert kept.index == new.index and kept.classes == new.classes
        for split in ("train", "val", "test"):
            (x, y), (fx, fy) = kept.split(split), new.split(split)
            assert x.dtype == fx.dtype and np.array_equal(x, fx) and np.array_equal(y, fy)
            assert not x.flags.writeable and not y.flags.writeable
            assert kept.split(split)[0] is x  # built once
            with pytest.raises(ValueError, match="read-only"):
                x[0] = 0


def test_permutation_is_the_plain_gather(tmp_path: Path) -> None:
    spec = ExperimentSpec(**BASE, dataset_update="permute", seed=9)
    data = load_dataset(spec, tmp_path)
    perms = permutations(spec, int(np.prod(data.train_x.shape[1:])))
    for task, perm in zip(make_tasks(spec, data), perms, strict=True):
        x = task.split("train")[0]
        if perm is None:
            assert x is data.train_x
        else:
            flat = data.train_x.reshape(len(data.train_x), -1)
            assert np.array_equal(x, flat[:, perm].reshape(data.train_x.shape))
            assert x.flags.c_contiguous and x.dtype == np.float32


def test_the_key_is_what_decides_the_arrays(tmp_path: Path) -> None:
    spec = ExperimentSpec(**BASE, dataset_update="permute", seed=1)
    key = stream_key(spec, tmp_path)
    # what only the training reads: the same stream
    same = {"learning_rate": 0.01, "epochs": 5, "batch_size": 32, "hidden": [8], "ewc": {"lambda": 3}}
    assert stream_key(ExperimentSpec(**{**BASE, "dataset_update": "permute", "seed": 1, **same}), tmp_path) == key
    # the seed decides the train/val split and the permutations
    assert stream_key(spec.model_copy(update={"seed": 2}), tmp_path) != key
    assert stream_key(ExperimentSpec(**BASE, dataset_update="switch", seed=1), tmp_path) != key
    assert stream_key(ExperimentSpec(**{**BASE, "splits": 2}, dataset_update="permute", seed=1), tmp_path) != key
    assert stream_key(spec, tmp_path / "elsewhere") != key
    (tmp_path / "mnist.npz").write_bytes(b"placed")  # a file placed in the dataset folder
    assert stream_key(spec, tmp_path) != key


def test_other_seeds_are_other_streams_and_the_cache_is_bounded(tmp_path: Path) -> None:
    cache = StreamCache(entries=2)
    streams = [cache.stream(ExperimentSpec(**BASE, dataset_update="permute", seed=s), tmp_path, load_dataset)
               for s in (0, 1, 2)]  # fmt: skip
    assert cache.misses == 3 and len(cache) == 2
    assert not np.array_equal(streams[0].tasks[1].split("train")[0][:1], streams[1].tasks[1].split("train")[0][:1])
    cache.stream(ExperimentSpec(**BASE, dataset_update="permute", seed=0), tmp_path, load_dataset)
    assert cache.misses == 4  # seed 0 went first (least recently used)
    small = StreamCache(max_bytes=1000)
    stream = small.stream(ExperimentSpec(**BASE, dataset_update="permute", seed=0), tmp_path, load_dataset)
    assert len(small) == 0 and stream.derived is None and stream.data.train_x.flags.writeable


def _results_equal(a: dict, b: dict) -> None:
    assert a["accuracy_matrix"] == b["accuracy_matrix"] and a["initial_accuracy"] == b["initial_accuracy"]
    assert [(e["loss"], e["val_accuracy"]) for e in a["epochs"]] == [(e["loss"], e["val_accuracy"]) for e in b["epochs"]]


def test_a_job_on_a_kept_stream_gives_the_fresh_result(tmp_path: Path) -> None:
    first = ExperimentSpec(**BASE, dataset_update="permute", seed=5, ewc={"lambda": 3})
    second = ExperimentSpec(**BASE, dataset_update="permute", seed=5, ewc={"lambda": 30}, learning_rate=0.003)
    learners = LearnerCache()
    train(first, dataset_cache=tmp_path, learners=learners)
    kept = train(second, dataset_cache=tmp_path, learners=learners)
    fresh = train(second, dataset_cache=tmp_path)
    _results_equal(kept, fresh)


def test_writer_writes_the_state_at_submit(tmp_path: Path) -> None:
    state = {"model": [np.arange(6, dtype=np.float32).reshape(2, 3)], "ewc": [np.ones(4), np.int64(7)]}
    writer = CheckpointWriter()
    writer.submit(tmp_path / "a", 1, state, {"epochs": [1, 2]})
    state["model"][0][:] = -1  # changed after the snapshot: not in the checkpoint
    writer.join()
    save_checkpoint(tmp_path / "b", 1, {"model": [np.arange(6, dtype=np.float32).reshape(2, 3)],
                                        "ewc": [np.ones(4), np.int64(7)]}, {"epochs": [1, 2]})  # fmt: skip
    with np.load(tmp_path / "a" / "task-1" / "state.npz") as a, np.load(tmp_path / "b" / "task-1" / "state.npz") as b:
        assert a.files == b.files and all(np.array_equal(a[k], b[k]) and a[k].dtype == b[k].dtype for k in a.files)
    assert json.loads((tmp_path / "a" / "task-1" / "history.json").read_text()) == {"task": 1, "epochs": [1, 2]}
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["task-1"]  # no temporary folder left
    writer.join()  # nothing in flight: a no-op
    assert snapshot(state)["model/0000"][0, 0] == -1


def test_writer_raises_the_write_error_at_join(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    writer = CheckpointWriter()
    writer.submit(tmp_path / "file", 1, {"model": [np.zeros(2)]}, {})
    with pytest.raises(OSError):
        writer.join()
    writer.join()  # raised once


class _Watch(Callback):
    """Records, when task k's first epoch ends, the latest whole checkpoint on disk; asks to
    stop at the first poll after the end of task `stop_after` (while its checkpoint is being
    written)."""

    def __init__(self, folder: Path, stop_after: int | None = None):
        self.folder, self.stop_after, self.seen, self.stop = folder, stop_after, [], False

    def on_epoch_end(self, event: EpochEnd) -> None:
        if event.task > 1 and event.task_epoch == 1:
            latest = latest_checkpoint(self.folder)
            self.seen.append(latest.name if latest else None)

    def on_task_end(self, event: TaskEnd) -> None:
        self.stop = event.task == self.stop_after

    def should_stop(self) -> bool:
        return self.stop


def test_checkpoint_on_disk_before_the_next_tasks_epoch_and_when_stopped(tmp_path: Path) -> None:
    spec = ExperimentSpec(**{**BASE, "epochs": 6}, dataset_update="permute", seed=2, ewc={})
    watch = _Watch(tmp_path / "run")
    result = train(spec, dataset_cache=tmp_path, checkpoint_dir=tmp_path / "run", callback=watch)
    assert watch.seen == ["task-1", "task-2"]
    assert latest_checkpoint(tmp_path / "run").name == "task-3" and (tmp_path / "run" / "model.keras").is_file()
    for stop_after in (1, 2):
        folder = tmp_path / f"stopped-{stop_after}"
        with pytest.raises(StopRequested):
            train(spec, dataset_cache=tmp_path, checkpoint_dir=folder, callback=_Watch(folder, stop_after))
        # the checkpoint written while the next task started is whole; no temporary folder left
        assert sorted(p.name for p in folder.iterdir()) == [f"task-{k}" for k in range(1, stop_after + 1)]
        resumed = train(spec, dataset_cache=tmp_path, checkpoint_dir=folder)
        assert resumed["accuracy_matrix"] == result["accuracy_matrix"]
        assert [e["loss"] for e in resumed["epochs"]] == [e["loss"] for e in result["epochs"]]
