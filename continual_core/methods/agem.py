"""A-GEM (Chaudhry et al. 2019, "Efficient Lifelong Learning with A-GEM"): a step may not
increase the loss on an episodic memory of past tasks, on average.

Inside the compiled step (`gradients` hook), from task 2 on: a reference gradient g_ref of
the mean cross-entropy on `spec.batch_size` examples drawn from the memory (the weights
all flattened into one vector), then

    g ← g − (g·g_ref / g_ref·g_ref) g_ref    when g·g_ref < 0,   g unchanged otherwise,

so the update never points against g_ref. During task 1 the memory is empty and g is left
alone (a `tf.cond`: same graph, no memory pass). The memory is the one experience replay
uses (`continual_core.methods.memory`: `reservoir` or `balanced`, filled at the end of each
task); the paper fills it per task, `balanced` keeps an equal share per class.

Refused together with replay: both are uses of one episodic memory (replaying it in the
batch, or constraining the step by it), and projecting a gradient that already contains the
memory against the memory's own gradient is neither method. The projection runs after the
gradients of the methods registered before it (FIM's mask, IncDet's clipping); FIM still
writes its frozen weights back after the step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic import BaseModel

from continual_core.lazy import keras, tf
from continual_core.methods.base import FinishedTask, Method, Step
from continual_core.methods.memory import EpisodicMemory, MemoryConfig


class AGEMConfig(MemoryConfig):
    """A-GEM: project each gradient so that it does not increase the loss on a memory of
    past tasks."""

    label: ClassVar[str] = "A-GEM"
    flag_help: ClassVar[str] = "Enable A-GEM (gradients projected against a memory of past tasks)."

    def resolve(self, spec: BaseModel) -> None:
        if "replay" in spec.methods:  # type: ignore[attr-defined]
            raise ValueError(
                "agem: A-GEM and replay cannot be combined; both keep an episodic memory "
                "(replay trains on it, A-GEM projects the gradient against it). Choose one"
            )


def agem_project(grads: Sequence[Any], reference: Sequence[Any]) -> list[Any]:
    """A-GEM's projection of the gradient `grads` (a list of tensors, read as one flat
    vector g) against `reference` (g_ref): g − (g·g_ref / g_ref·g_ref) g_ref where
    g·g_ref < 0, else g."""
    dot = tf.add_n([tf.reduce_sum(g * r) for g, r in zip(grads, reference)])
    ref_sq = tf.add_n([tf.reduce_sum(tf.square(r)) for r in reference])
    scale = tf.where(dot < 0.0, dot / tf.maximum(ref_sq, 1e-30), 0.0)
    return [g - scale * r for g, r in zip(grads, reference)]


class AGEM(Method):
    """The reference gradient on a memory batch and the projection, in every step."""

    name = "agem"
    Config = AGEMConfig
    values = frozenset({"strategy"})

    def __init__(self, config: AGEMConfig, learner: Any):
        super().__init__(config, learner)
        self.model, self.weights = learner.model, learner.weights
        #: examples of the reference batch (the spec's batch size), a variable: a job of
        #: another batch size reuses the compiled step.
        self.reference_batch = tf.Variable(
            int(learner.spec.batch_size), dtype=tf.int32, trainable=False, name="agem_batch"
        )
        self.memory = EpisodicMemory(config, learner.spec, learner.model.output_shape[-1])

    def reference_gradient(self) -> list[Any]:
        """g_ref: the gradient of the mean cross-entropy on a batch drawn from the memory."""
        x, y = self.memory.sample(self.reference_batch)
        with tf.GradientTape() as tape:
            logits = self.model(x, training=True)
            loss = tf.reduce_mean(
                keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
            )
        return list(tape.gradient(loss, self.weights))

    def gradients(self, grads: Sequence[Any], step: Step) -> list[Any]:
        grads = list(grads)
        return self.memory.when_filled(
            lambda: agem_project(grads, self.reference_gradient()), lambda: grads
        )

    def start_task(self, task: int) -> None:
        self.memory.start_task(task)

    def end_task(self, finished: FinishedTask) -> dict[str, float]:
        self.memory.add(finished.x, finished.y, finished.index)
        return {}

    def state(self) -> list[Any]:
        return self.memory.state

    def reuse(self, fresh: Method) -> None:
        super().reuse(fresh)
        self.memory.reuse(fresh.memory)  # type: ignore[attr-defined]
