"""Output heads: one head shared by every task (`heads: shared`), or one per task
(`heads: multi`, task-incremental learning).

With `multi` the network keeps ONE output layer, made wide enough that every task owns a
block of output units (its head), one unit per class it holds; a task's examples are
trained and evaluated on their own head only (the other units are masked out of the
softmax, so they get no gradient and never win the argmax). The graph is the same for
every task, so it is traced once, and the heads are ordinary weights (checkpointed,
saved in model.keras).

- When the tasks' classes do not overlap (`switch`: split MNIST), a class keeps its own
  output unit: the layer is as wide as with a shared head (same network, same initial
  weights), head k = the units of task k's classes, and the labels are the class ids.
  Task-IL and class-IL then differ only in the masking.
- When they overlap (`permute`: every task has every class; `increment`), task k gets
  its own block of units after task k−1's: the layer has Σ_k |classes of task k| units.

Inside the learner a label is an output UNIT (`HeadLayout.encode`): the class id for
disjoint tasks, offset by its task's block otherwise. From a unit the learner knows the
example's task, so a replayed example of an old task is still trained on its own head.

For methods: `Step.logits` holds every unit; a method that takes its own loss on logits
and labels (A-GEM's reference gradient) masks them as the learner does,
`heads.apply(logits, heads.for_labels(y))` with `heads = learner.heads` (None: shared);
one that works per head (LwF) reads `head_units(spec)`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np

from continual_core.lazy import tf
from continual_core.streams import task_classes

#: The logit given to the units outside an example's head (exp() of it is 0 in float32).
MASKED = -1e9


@dataclass(frozen=True)
class HeadLayout:
    """Which output units each task's head holds (tasks 0-based here)."""

    classes: tuple[tuple[int, ...], ...]  # the classes of each task, in label order
    units: tuple[tuple[int, ...], ...]  # the output unit of each of those classes

    @property
    def width(self) -> int:
        """Number of output units of the network."""
        return 1 + max(u for head in self.units for u in head)

    @property
    def mask(self) -> np.ndarray:
        """(tasks, width) bool: mask[k, u] = unit u belongs to task k+1's head."""
        mask = np.zeros((len(self.units), self.width), bool)
        for k, head in enumerate(self.units):
            mask[k, list(head)] = True
        return mask

    @property
    def task_of_unit(self) -> np.ndarray:
        """(width,) int32: the 0-based task whose head holds each unit (each unit is in
        exactly one head)."""
        owner = np.zeros(self.width, np.int32)
        for k, head in enumerate(self.units):
            owner[list(head)] = k
        return owner

    def encode(self, y: np.ndarray, task: int) -> np.ndarray:
        """The output units of the class labels `y` of task `task` (1-based), int32."""
        y = np.asarray(y)
        lookup = np.full(max(self.classes[task - 1], default=0) + 1, -1, np.int32)
        lookup[list(self.classes[task - 1])] = self.units[task - 1]
        if y.size and (y.min() < 0 or y.max() >= len(lookup) or (lookup[y] < 0).any()):
            raise ValueError(f"labels outside the classes of task {task}")
        return lookup[y]


def head_layout(spec: Any) -> HeadLayout | None:
    """The layout of `spec`'s heads; None with one shared head (`heads: shared`)."""
    if getattr(spec, "heads", "shared") != "multi":
        return None
    classes = task_classes(spec)
    flat = [c for group in classes for c in group]
    if len(flat) == len(set(flat)):  # disjoint: a class keeps its unit
        return HeadLayout(classes, classes)
    offsets = np.cumsum([0] + [len(g) for g in classes])
    units = tuple(tuple(range(int(a), int(b))) for a, b in itertools.pairwise(offsets))
    return HeadLayout(classes, units)


def output_width(spec: Any) -> int:
    """Units of the network's output layer: the classes, or every task's head."""
    layout = head_layout(spec)
    return spec.num_classes if layout is None else layout.width


def head_units(spec: Any) -> list[list[int]] | None:
    """The output units of each task's head (None with a shared head), e.g. for a method
    that works per head (LwF distils each earlier task's head)."""
    layout = head_layout(spec)
    return None if layout is None else [list(u) for u in layout.units]


class HeadMask:
    """In-graph masking of logits to a head (constants, so tracing sees one graph)."""

    def __init__(self, layout: HeadLayout):
        self.layout = layout
        self.mask = tf.constant(layout.mask)
        self.task_of_unit = tf.constant(layout.task_of_unit)

    def for_labels(self, labels: Any) -> Any:
        """(N, width) bool: the head of each example, from its label (an output unit)."""
        return tf.gather(self.mask, tf.gather(self.task_of_unit, labels))

    def for_tasks(self, tasks: Any) -> Any:
        """(N, width) bool: the head of each example, from its 0-based task."""
        return tf.gather(self.mask, tasks)

    @staticmethod
    def apply(logits: Any, mask: Any) -> Any:
        """`logits` with every unit outside `mask` at `MASKED`."""
        return tf.where(mask, logits, tf.constant(MASKED, logits.dtype))
