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
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from continual_core.datasets import Dataset
from continual_core.spec import ExperimentSpec
from continual_core.streams import class_groups, stream_classes, task_classes

__all__ = ["Task", "class_groups", "make_tasks", "permutations", "task_classes", "training_set"]


@dataclass(frozen=True)
class Task:
    """One task of the stream (1-based `index`): which classes, which pixel permutation.

    Its arrays (float32 images, int32 labels) are made from the shared dataset when they
    are read, not stored: a 10-task permuted MNIST holds one copy of the images, not ten.
    Read each split once per use (each access builds it anew for permuted/selected tasks).
    """

    index: int
    classes: tuple[int, ...]  # the labels this task's data holds
    permutation: np.ndarray | None  # pixel permutation of the flattened image, None = identity
    source: Dataset = field(repr=False)
    select: bool = False  # keep only `classes` (increment/switch)

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(images, labels) of the `train`, `val` or `test` split of this task."""
        x, y = getattr(self.source, f"{name}_x"), getattr(self.source, f"{name}_y")
        if self.select:
            x, y = _select(x, y, self.classes)
        return _permute(x, self.permutation), y

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
    flat = x.reshape(len(x), -1)
    return np.ascontiguousarray(flat[:, perm].reshape(x.shape))


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
