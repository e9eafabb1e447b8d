"""Which classes each task of a stream holds (TF-free, and free of the spec: the heads'
layout, the models and the task stream all read it). See `continual_core.tasks`."""

from __future__ import annotations

from typing import Any

import numpy as np


def class_groups(num_classes: int, splits: int) -> list[tuple[int, ...]]:
    """`numpy.array_split` of range(num_classes) into `splits` groups (first groups larger)."""
    return [tuple(int(c) for c in g) for g in np.array_split(np.arange(num_classes), splits)]


def stream_classes(update: str, num_classes: int, num_tasks: int) -> list[tuple[int, ...]]:
    """The classes of each task of an `update` stream: every class (`full`, `permute`), the
    groups 1..k (`increment`), group k alone (`switch`); groups by `class_groups`."""
    if update in ("full", "permute"):
        return [tuple(range(num_classes))] * num_tasks
    groups = class_groups(num_classes, num_tasks)
    if update == "increment":
        return [tuple(c for g in groups[:k] for c in g) for k in range(1, num_tasks + 1)]
    return groups  # switch


def task_classes(spec: Any) -> tuple[tuple[int, ...], ...]:
    """The classes of each task of `spec`'s stream (TF-free: read by the heads' layout)."""
    return tuple(stream_classes(spec.dataset_update, spec.num_classes, spec.num_tasks))
