"""IncDet's gradient clipping: each gradient element g becomes g · b / max(b, |g|)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic import Field

from continual_core.fields import FiniteFloat
from continual_core.lazy import tf
from continual_core.methods.base import Method, MethodConfig, Step


class IncDetConfig(MethodConfig):
    """IncDet gradient clipping: each gradient element g becomes g · b / max(b, |g|)."""

    label: ClassVar[str] = "IncDet clipping"
    flag_help: ClassVar[str] = "Enable IncDet gradient clipping."

    threshold: FiniteFloat = Field(default=1e-6, gt=0, description="IncDet clipping threshold b.")


def incdet_clip(grads: Sequence[Any], threshold: float) -> list[Any]:
    """IncDet: scale each gradient element g by b / max(b, |g|) (b = `threshold`), so a
    gradient larger than b in magnitude becomes ±b. `threshold`: a number or a variable."""
    b = tf.convert_to_tensor(threshold, tf.float32)
    return [g * (b / tf.maximum(b, tf.abs(g))) for g in grads]


class IncDet(Method):
    """Clips the gradients of every step; nothing to consolidate, no state."""

    name = "incdet"
    Config = IncDetConfig
    values = frozenset({"threshold"})

    def __init__(self, config: IncDetConfig, learner: Any):
        super().__init__(config, learner)
        #: b, a variable: a job of another threshold reuses the compiled step.
        self.threshold = tf.Variable(float(config.threshold), trainable=False, name="incdet_threshold")

    def gradients(self, grads: Sequence[Any], step: Step) -> list[Any]:
        return incdet_clip(grads, self.threshold)
