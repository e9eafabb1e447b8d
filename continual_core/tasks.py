"""Task streams: how the dataset changes from one task to the next.

- `full`: one task, the whole dataset.
- `permute`: task 1 is the original images; every later task applies its own fixed pixel
  permutation (seeded) to the flattened H·W·C vector, the same one for train/val/test.
- `increment`: the classes are split with `numpy.array_split` into `splits` groups
  (10 classes, 3 splits → {0-3}, {4-6}, {7-9}); task k trains on groups 1..k, and its
  validation/test sets hold those classes.
- `switch`: task k is group k alone.

With `heads: shared` all tasks share one output head with every class of the dataset;
with `heads: multi` each task has its own (`continual_core.heads`). With `joint`, task k
trains on the union of the training sets of tasks 1..k (`training_set`).

A worker runs many jobs in one process: `StreamCache` keeps the few most recent streams
(the dataset and its tasks, each split built once, read-only) by everything that decides
their arrays, so a job of the same data (a sweep of λ or learning rates at one seed) does
not load and permute them again; a stream of another seed still finds the dataset's file
read (`continual_core.datasets.kept_files`).
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from continual_core.datasets import Dataset, kept_files
from continual_core.spec import ExperimentSpec
from continual_core.streams import class_groups, stream_classes, task_classes

__all__ = ["Stream", "StreamCache", "Task", "class_groups", "make_tasks", "permutations",
           "stream_key", "task_classes", "training_set", "worker_streams"]


@dataclass(frozen=True)
class Task:
    """One task of the stream (1-based `index`): which classes, which pixel permutation.

    Its arrays (float32 images, int32 labels) are made from the shared dataset when they
    are read, not stored: a 10-task permuted MNIST holds one copy of the images, not ten.
    Read each split once per use (each access builds it anew for permuted/selected tasks),
    except for a task of a cached stream (`memo` set): its splits are built once, read-only.
    """

    index: int
    classes: tuple[int, ...]  # the labels this task's data holds
    permutation: np.ndarray | None  # pixel permutation of the flattened image, None = identity
    source: Dataset = field(repr=False)
    select: bool = False  # keep only `classes` (increment/switch)
    #: split name → its (read-only) arrays, for a task of a cached stream; None: not kept
    memo: dict[str, tuple[np.ndarray, np.ndarray]] | None = field(
        default=None, repr=False, compare=False
    )

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(images, labels) of the `train`, `val` or `test` split of this task."""
        if self.memo is not None and name in self.memo:
            return self.memo[name]
        x, y = getattr(self.source, f"{name}_x"), getattr(self.source, f"{name}_y")
        if self.select:
            x, y = _select(x, y, self.classes)
        x = _permute(x, self.permutation)
        if self.memo is not None:
            self.memo[name] = x, y = _read_only(x), _read_only(y)
        return x, y

    @property
    def train_x(self) -> np.ndarray:
        return self.split("train")[0]

    @property
    def train_y(self) -> np.ndarray:
        return self.split("train")[1]

    @property
    def val_x(self) -> np.ndarray:
        return self.split("val")[0]

    @property
    def val_y(self) -> np.ndarray:
        return self.split("val")[1]

    @property
    def test_x(self) -> np.ndarray:
        return self.split("test")[0]

    @property
    def test_y(self) -> np.ndarray:
        return self.split("test")[1]


def permutations(spec: ExperimentSpec, size: int) -> list[np.ndarray | None]:
    """One pixel permutation per task of a `permute` stream: None (identity) for task 1,
    then fixed permutations of range(size) drawn from a generator seeded by `spec.seed`."""
    rng = np.random.default_rng([spec.seed, 0x9E])
    return [None] + [rng.permutation(size) for _ in range(spec.num_tasks - 1)]


def _permute(x: np.ndarray, perm: np.ndarray | None) -> np.ndarray:
    if perm is None:
        return x
    # np.take along the columns: the same gather as flat[:, perm], several times faster
    return np.take(x.reshape(len(x), -1), perm, axis=1).reshape(x.shape)


def _select(x: np.ndarray, y: np.ndarray, classes: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    keep = np.isin(y, np.asarray(classes))
    return x[keep], y[keep]


def make_tasks(spec: ExperimentSpec, data: Dataset) -> list[Task]:
    """The task stream of `spec.dataset_update` over `data` (length `spec.num_tasks`)."""
    classes = stream_classes(spec.dataset_update, data.num_classes, spec.num_tasks)
    if spec.dataset_update in ("full", "permute"):
        size = int(np.prod(data.train_x.shape[1:]))
        perms = permutations(spec, size) if spec.dataset_update == "permute" else [None]
        return [Task(k, classes[k - 1], perm, data) for k, perm in enumerate(perms, start=1)]
    return [Task(k, classes[k - 1], None, data, select=True) for k in range(1, spec.num_tasks + 1)]


def training_set(
    tasks: list[Task], k: int, *, joint: bool, encode: Callable[[np.ndarray, int], np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """The (images, labels) task k (1-based) trains on: its own training split, or with
    `joint` the union of tasks 1..k's, in task order. `encode(y, task)` turns a task's
    class labels into the learner's labels (its output units under `heads: multi`)."""
    parts = [(t.split("train"), t.index) for t in (tasks[:k] if joint else [tasks[k - 1]])]
    xs = [x for (x, _), _ in parts]
    ys = [encode(y, index) for (_, y), index in parts]
    if len(parts) == 1:
        return xs[0], ys[0]
    return np.concatenate(xs), np.concatenate(ys)


def _read_only(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


@dataclass
class Stream:
    """A job's data: the dataset, its task stream and `derived`, what a user builds from
    their arrays once (the trainer's stacked validation/test sets); read-only when cached."""

    data: Dataset
    tasks: list[Task]
    derived: dict[str, Any] | None = None  # None: not cached, build anew


#: The spec fields that decide a stream's arrays: what `load_dataset` reads (the dataset,
#: an uploaded one's checksum, the synthetic generator, the seed of the train/val split)
#: and what `make_tasks` reads (the update, the number of tasks, the permutations' seed).
STREAM_FIELDS = ("dataset", "user_dataset", "synthetic", "dataset_update", "splits", "seed")


def stream_key(spec: ExperimentSpec, dataset_cache: Path) -> str:
    """Everything that decides the arrays of `spec`'s stream (JSON text): the spec's
    `STREAM_FIELDS`, its shape and classes, and the dataset folder with the name, size and
    modification time of each entry (a file placed or replaced there is another key)."""
    spec_json = spec.to_json_dict()
    folder = Path(dataset_cache).resolve()
    entries = []
    if folder.is_dir():
        for entry in os.scandir(folder):
            st = entry.stat()
            entries.append((entry.name, st.st_size, st.st_mtime_ns))
    return json.dumps({
        "spec": {k: spec_json.get(k) for k in STREAM_FIELDS},
        "shape": list(spec.input_shape), "classes": spec.num_classes, "tasks": spec.num_tasks,
        "folder": str(folder), "entries": sorted(entries),
    }, sort_keys=True, default=str)  # fmt: skip


class StreamCache:
    """The streams of one process by `stream_key`, the `entries` most recently used kept,
    within `max_bytes` (a bound of what a stream may come to hold: its dataset, a copy of it
    per task, and the stacked validation/test sets). A bigger stream is never kept."""

    def __init__(self, entries: int = 4, max_bytes: int = 256 * 2**20):
        self.entries, self.max_bytes = max(1, entries), max_bytes
        self._streams: OrderedDict[str, tuple[Stream, int]] = OrderedDict()
        self.hits = self.misses = 0

    def stream(
        self, spec: ExperimentSpec, dataset_cache: Path, load: Callable[[Any, Path], Dataset]
    ) -> Stream:
        """`spec`'s stream: a kept one (a hit), or `load(spec, dataset_cache)` and its tasks,
        then kept when it fits (a miss)."""
        key = stream_key(spec, dataset_cache)
        kept = self._streams.pop(key, None)
        if kept is not None:
            self.hits += 1
            self._streams[key] = kept
            return kept[0]
        self.misses += 1
        with kept_files():  # a stream of another seed reads the same file: kept read
            data = load(spec, Path(dataset_cache))
        tasks = make_tasks(spec, data)
        arrays = (data.train_x, data.train_y, data.val_x, data.val_y, data.test_x, data.test_y)
        size = sum(a.nbytes for a in arrays) * (2 * len(tasks) + 1)
        if size > self.max_bytes:
            return Stream(data, tasks)
        for a in arrays:
            _read_only(a)
        stream = Stream(data, [replace(t, memo={}) for t in tasks], {})
        self._streams[key] = (stream, size)
        while len(self._streams) > self.entries or self.nbytes > self.max_bytes:
            self._streams.popitem(last=False)
        return stream

    @property
    def nbytes(self) -> int:
        """The bound of what the kept streams hold (each one's `max_bytes` estimate)."""
        return sum(size for _, size in self._streams.values())

    def __len__(self) -> int:
        return len(self._streams)


_WORKER: StreamCache | None = None


def worker_streams() -> StreamCache:
    """This process's stream cache (a worker runs one job at a time per process)."""
    global _WORKER
    if _WORKER is None:
        _WORKER = StreamCache()
    return _WORKER
