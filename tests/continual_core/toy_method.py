"""A test-only method that fires every hook of the protocol (`continual_core.methods.base`),
registered by the tests themselves (`registered(Toy)`), never by the registry.

- batch: counts the examples it sees; penalty: decay · Σ θ² (an L2 pull);
- gradients: scales them; after_step: counts the steps;
- start_task / end_task: count the tasks started (in Python) and ended (in its state);
- state: its three counters, checkpointed as the group `toy`.

With decay 0 and scale 1 it changes nothing: training is bit-identical to a plain run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import tensorflow as tf
from pydantic import Field

from continual_core.fields import FiniteFloat
from continual_core.methods import FinishedTask, Method, MethodConfig, Step


class ToyConfig(MethodConfig):
    """The test-only toy: an L2 pull and a gradient scale."""

    label: ClassVar[str] = "Toy (test only)"
    flag_help: ClassVar[str] = "Enable the test-only toy method."

    decay: FiniteFloat = Field(default=0.0, ge=0, description="Strength of the L2 pull.")
    scale: FiniteFloat = Field(default=1.0, gt=0, description="Factor on every gradient.")


class Toy(Method):
    name = "toy"
    Config = ToyConfig

    def __init__(self, config: ToyConfig, learner: Any):
        super().__init__(config, learner)
        self.weights = learner.weights
        self.seen = tf.Variable(0, dtype=tf.int64, trainable=False, name="toy_seen")
        self.steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="toy_steps")
        self.ended = tf.Variable(0, dtype=tf.int64, trainable=False, name="toy_ended")
        self.started: list[int] = []

    def batch(self, x: Any, y: Any) -> tuple[Any, Any]:
        self.seen.assign_add(tf.cast(tf.shape(y)[0], tf.int64))
        return x, y

    def penalty(self, step: Step) -> Any:
        return self.config.decay * tf.add_n([tf.reduce_sum(tf.square(w)) for w in self.weights])

    def gradients(self, grads: Sequence[Any], step: Step) -> list[Any]:
        return [g * self.config.scale for g in grads]

    def after_step(self, step: Step) -> None:
        self.steps.assign_add(1)

    def start_task(self, task: int) -> None:
        self.started.append(task)

    def end_task(self, finished: FinishedTask) -> dict[str, float]:
        self.ended.assign_add(1)
        return {}

    def state(self) -> list[Any]:
        return [self.seen, self.steps, self.ended]
