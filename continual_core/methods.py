"""The continual-learning methods, as state that lives in `tf.Variable`s from the start.

Every method's state exists (as zeros / False) before the first training step, so the
compiled step's graph is the same for every task and nothing is retraced when a task ends.

- `ElasticWeightConsolidation` — the penalty λ/2 · Σ_k Σ_i F_k,i (θ_i − θ*_k,i)² in constant
  memory. Expanding the square, the sum over finished tasks is one quadratic:
      Σ_k F_k (θ − θ*_k)² = A θ² − 2 B θ + C,  A = Σ_k F_k,  B = Σ_k F_k θ*_k,  C = Σ_k F_k θ*_k²
  so the state is A and B per weight plus the scalar Σ_i C_i, whatever the number of tasks.
- `FisherMasking` (FIM) — after a task, every weight with Fisher ≥ threshold is frozen
  (masks OR-ed across tasks). Frozen weights get a zero gradient AND are written back to
  their frozen value after the optimizer step, so Adam's momentum cannot move them.
- `incdet_clip` — IncDet's gradient clipping: g → g · b / max(b, |g|).
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf


def _zeros_like(v: tf.Variable, name: str, dtype: tf.DType = tf.float32) -> tf.Variable:
    return tf.Variable(tf.zeros(v.shape, dtype), trainable=False, name=name)


class ElasticWeightConsolidation:
    """Constant-memory EWC state (A = ΣF, B = ΣFθ*, c = ΣΣFθ*²) and its penalty."""

    def __init__(self, variables: Sequence[tf.Variable], lam: float):
        self.lam = float(lam)
        self.fisher_sum = [_zeros_like(v, "ewc_fisher_sum") for v in variables]
        self.fisher_theta_sum = [_zeros_like(v, "ewc_fisher_theta_sum") for v in variables]
        self.fisher_theta_sq_sum = tf.Variable(0.0, trainable=False, name="ewc_fisher_theta_sq_sum")

    @property
    def state(self) -> list[tf.Variable]:
        """Every variable of the EWC state (for checkpoints)."""
        return [*self.fisher_sum, *self.fisher_theta_sum, self.fisher_theta_sq_sum]

    def penalty(self, variables: Sequence[tf.Variable]) -> tf.Tensor:
        """λ/2 · Σ_k Σ_i F_k,i (θ_i − θ*_k,i)², computed as λ/2 · (Σ Aθ² − 2Bθ + c) (scalar)."""
        total = tf.convert_to_tensor(self.fisher_theta_sq_sum)
        for theta, a, b in zip(variables, self.fisher_sum, self.fisher_theta_sum):
            total += tf.reduce_sum(a * tf.square(theta) - 2.0 * b * theta)
        return 0.5 * self.lam * total

    def consolidate(self, fisher: Sequence[tf.Tensor], variables: Sequence[tf.Variable]) -> None:
        """Add the finished task's quadratic: A += F, B += Fθ*, c += ΣFθ*² at θ* = `variables`."""
        for f, theta, a, b in zip(fisher, variables, self.fisher_sum, self.fisher_theta_sum):
            a.assign_add(f)
            b.assign_add(f * theta)
            self.fisher_theta_sq_sum.assign_add(tf.reduce_sum(f * tf.square(theta)))


class FisherMasking:
    """FIM state: per weight, whether it is frozen and the value it is frozen at."""

    def __init__(self, variables: Sequence[tf.Variable], threshold: float):
        self.threshold = float(threshold)
        self.frozen = [_zeros_like(v, "fim_frozen", tf.bool) for v in variables]
        self.frozen_value = [_zeros_like(v, "fim_frozen_value") for v in variables]

    @property
    def state(self) -> list[tf.Variable]:
        """Every variable of the FIM state (for checkpoints)."""
        return [*self.frozen, *self.frozen_value]

    def mask_gradients(self, grads: Sequence[tf.Tensor]) -> list[tf.Tensor]:
        """Zero the gradient of every frozen weight."""
        return [tf.where(m, tf.zeros_like(g), g) for g, m in zip(grads, self.frozen)]

    def restore_frozen(self, variables: Sequence[tf.Variable]) -> None:
        """Write every frozen weight back to its frozen value (undoes momentum updates)."""
        for v, m, value in zip(variables, self.frozen, self.frozen_value):
            v.assign(tf.where(m, value, v))

    def freeze(self, fisher: Sequence[tf.Tensor], variables: Sequence[tf.Variable]) -> float:
        """Freeze every weight with Fisher ≥ threshold (once frozen, frozen forever) at its
        current value. Returns the fraction of all weights frozen so far."""
        frozen = total = 0
        for f, v, m, value in zip(fisher, variables, self.frozen, self.frozen_value):
            newly = tf.logical_and(f >= self.threshold, tf.logical_not(m))
            value.assign(tf.where(newly, v, value))
            m.assign(tf.logical_or(m, newly))
            frozen += int(tf.reduce_sum(tf.cast(m, tf.int64)))
            total += int(tf.size(m))
        return frozen / max(1, total)


def incdet_clip(grads: Sequence[tf.Tensor], threshold: float) -> list[tf.Tensor]:
    """IncDet: scale each gradient element g by b / max(b, |g|) (b = `threshold`), so a
    gradient larger than b in magnitude becomes ±b."""
    b = tf.constant(threshold, tf.float32)
    return [g * (b / tf.maximum(b, tf.abs(g))) for g in grads]
