"""Learning without Forgetting (Li & Hoiem, 2016): distil the previous model into the new one.

After each task a frozen copy of the network keeps the weights it had then (its variables
exist from the start and are assigned at the end of a task, so the step is traced once).
While the next tasks train, the penalty on the current batch x (after replay and
augmentation) is

    α · T² · mean_n KL( softmax(old(x_n)/T) ‖ softmax(new(x_n)/T) )

(Hinton's temperature-scaled distillation; T² keeps its gradient's scale independent of T;
KL = the cross-entropy with the soft targets minus their entropy, a constant, so the
gradient is the paper's modified cross-entropy's). It is off during task 1 (no old model).
With one shared head the KL is over every output unit; with `heads: multi` (task-IL) it is
taken over each earlier task's own head (`continual_core.heads.head_units`) and summed over
those tasks (the paper's λ_o per old task); the current task's head gets no distillation.

With `ewc` and `incdet` it is IncDet's full method (EWC penalty + distillation + clipped
gradients): the penalties add, the clipping applies to the gradient of their sum.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from continual_core.fields import FiniteFloat
from continual_core.heads import head_units
from continual_core.lazy import keras, tf
from continual_core.methods.base import FinishedTask, Method, MethodConfig, Step


class LwFConfig(MethodConfig):
    """Learning without Forgetting: α·T²·KL(old model's softened outputs ‖ the new one's)."""

    label: ClassVar[str] = "LwF (distillation)"
    flag_help: ClassVar[str] = (
        "Enable Learning without Forgetting (distillation from the previous model)."
    )

    alpha: FiniteFloat = Field(default=1.0, ge=0, description="Weight α of the distillation loss.")
    temperature: FiniteFloat = Field(
        default=2.0, gt=0, description="Distillation temperature T (the paper's 2)."
    )


def distillation_loss(old_logits: Any, new_logits: Any, temperature: float) -> Any:
    """T² · mean over the batch of KL(softmax(old/T) ‖ softmax(new/T)) (scalar)."""
    t = tf.constant(temperature, tf.float32)
    p_old = tf.nn.softmax(old_logits / t, axis=-1)
    kl = tf.reduce_sum(
        p_old
        * (tf.nn.log_softmax(old_logits / t, axis=-1) - tf.nn.log_softmax(new_logits / t, axis=-1)),
        axis=-1,
    )
    return t * t * tf.reduce_mean(kl)


class LwF(Method):
    """The distillation penalty from task 2 on; at each task end, the old model := the model."""

    name = "lwf"
    Config = LwFConfig
    #: T stays a constant of the graph (a job of another T compiles its own): with T a
    #: variable the step's gradient differs in the last bits from the constant-T one that
    #: every earlier result was computed with (grappler folds the constant divisions).
    values = frozenset({"alpha"})

    def __init__(self, config: LwFConfig, learner: Any):
        super().__init__(config, learner)
        self.model = learner.model
        self.old = keras.models.clone_model(learner.model)
        self.old.trainable = False
        self.old_variables = list(self.old.variables)
        if [v.shape for v in self.old_variables] != [v.shape for v in self.model.variables]:
            raise RuntimeError("lwf: the frozen copy does not match the model's variables")
        #: 0 until a task has ended (no old model yet), then the number of finished tasks.
        self.finished = tf.Variable(0, dtype=tf.int32, trainable=False, name="lwf_finished")
        self.groups = head_units(learner.spec)
        #: α, a variable: a job of another α reuses the compiled step.
        self.alpha = tf.Variable(float(config.alpha), trainable=False, name="lwf_alpha")

    def penalty(self, step: Step) -> Any:
        alpha, temperature = self.alpha, float(self.config.temperature)  # type: ignore[attr-defined]

        def distil() -> Any:
            old_logits = tf.stop_gradient(self.old(step.x, training=False))
            if self.groups is None:
                return alpha * distillation_loss(old_logits, step.logits, temperature)
            total = tf.constant(0.0, tf.float32)
            for j, group in enumerate(self.groups):
                cols = tf.constant(np.array(group, np.int32))
                kl = distillation_loss(tf.gather(old_logits, cols, axis=1),
                                       tf.gather(step.logits, cols, axis=1), temperature)  # fmt: skip
                total += tf.cast(j < self.finished, tf.float32) * kl
            return alpha * total

        return tf.cond(self.finished > 0, distil, lambda: tf.constant(0.0, tf.float32))

    def end_task(self, finished: FinishedTask) -> dict[str, float]:
        for old, new in zip(self.old_variables, self.model.variables):
            old.assign(new)
        self.finished.assign(finished.index)
        return {}

    def state(self) -> list[Any]:
        return [*self.old_variables, self.finished]
