"""Importance estimators: how much each weight matters to a finished task.

A method reads an estimate through `FinishedTask.importance(estimator, samples)`; the
learner builds each estimator its methods name once per run (so compiled functions are
traced once) and estimates once per task and (estimator, samples), whichever methods ask.

An estimator is a class built as `Estimator(model, spec)` with
`estimate(x, y, task, samples) -> list[tf.Tensor]` (one tensor per trainable variable), and
`reuse(fresh)` when a worker may keep it for another job of the same graph (it takes the
fresh estimator's Python side; without it the learner is never reused), and optionally
`warm_up(sizes)` / `join_warm_up()`: compile ahead of the first estimate (`sizes`: the sample
sizes the methods will ask for), off the run's critical path, changing no state (the trainer
starts it during a run's first task).
`ESTIMATORS` names the built-in ones; a method may bring its own class instead of a name.
"""

from __future__ import annotations

from typing import Any, Protocol

import keras
import numpy as np
import tensorflow as tf

from continual_core.fisher import FisherDiagonal, fisher_sample
from continual_core.heads import head_layout
from continual_core.seeds import seed_for


class Estimator(Protocol):
    def estimate(self, x: np.ndarray, y: np.ndarray, task: int, samples: int) -> list[tf.Tensor]:
        """Per-weight importance after task `task` from `samples` of its examples (x, y)."""
        ...


class FisherImportance:
    """The diagonal Fisher of the spec's estimator (`spec.fisher`: empirical, sampled,
    seed) from `samples` training examples drawn with a generator seeded by (seed, task);
    with `heads: multi` over each example's own head."""

    def __init__(self, model: keras.Model, spec: Any):
        self.spec = spec
        self.diagonal = FisherDiagonal(model, spec.fisher, head_layout(spec))

    def reuse(self, fresh: FisherImportance) -> None:
        """For another job of the same graph: its spec (the seeds of the sample)."""
        self.spec = fresh.spec

    def warm_up(self, sizes: list[int]) -> None:
        """Trace and instantiate the Fisher's compiled functions in the background (once)."""
        self.diagonal.warm_up(sizes)

    def join_warm_up(self) -> None:
        self.diagonal.join_warm_up()

    def estimate(self, x: np.ndarray, y: np.ndarray, task: int, samples: int) -> list[tf.Tensor]:
        rng = np.random.default_rng(seed_for(self.spec, task, 1))
        idx = fisher_sample(rng, len(x), samples)
        return self.diagonal.estimate(x[idx], y[idx], (seed_for(self.spec, task, 2), task))


#: Estimator name → class.
ESTIMATORS: dict[str, type] = {"fisher": FisherImportance}


def estimator_class(key: str | type) -> type:
    """The class of an estimator named in `ESTIMATORS`, or `key` itself if it is a class."""
    if isinstance(key, str):
        return ESTIMATORS[key]
    return key
