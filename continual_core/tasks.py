"""Task streams: how the dataset changes from one task to the next.

- `full`: one task, the whole dataset.
- `permute`: task 1 is the original images; every later task applies its own fixed pixel
  permutation (seeded) to the flattened H·W·C vector, the same one for train/val/test.
- `increment`: the classes are split with `numpy.array_split` into `splits` groups
  (10 classes, 3 splits → {0-3}, {4-6}, {7-9}); task k trains on groups 1..k, and its
  validation/test sets hold those classes.
- `switch`: task k is group k alone.

All tasks share one output head with every class of the dataset.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from continual_core.datasets import Dataset
from continual_core.spec import ExperimentSpec


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


def class_groups(num_classes: int, splits: int) -> list[tuple[int, ...]]:
    """`numpy.array_split` of range(num_classes) into `splits` groups (first groups larger)."""
    return [tuple(int(c) for c in g) for g in np.array_split(np.arange(num_classes), splits)]


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
    if spec.dataset_update in ("full", "permute"):
        size = int(np.prod(data.train_x.shape[1:]))
        perms = permutations(spec, size) if spec.dataset_update == "permute" else [None]
        all_classes = tuple(range(data.num_classes))
        return [Task(k, all_classes, perm, data) for k, perm in enumerate(perms, start=1)]
    groups = class_groups(data.num_classes, spec.splits)
    tasks: list[Task] = []
    for k in range(1, spec.num_tasks + 1):
        if spec.dataset_update == "increment":
            classes = tuple(c for g in groups[:k] for c in g)
        else:  # switch
            classes = groups[k - 1]
        tasks.append(Task(k, classes, None, data, select=True))
    return tasks
