"""Memory Aware Synapses (Aljundi et al., ECCV 2018): λ · Σ_i Ω_i (θ_i − θ*_i)².

Ω_i, a weight's importance, is how sensitive the learned function is to it, measured
without labels: the mean over N examples of |∂ ‖f(x_n)‖₂² / ∂θ_i|, with f the network's
output LOGITS (the last layer's output, as in the authors' code; the model has no softmax
layer). Each example's gradient is taken on its own and its magnitude averaged (the
paper's eq. 2 and 4), in one vectorised pass like the Fisher (`continual_core.fisher`).

After each task Ω is ADDED to the importance of the earlier tasks and θ* becomes the
current weights (the paper's accumulation: one anchor, one importance, whatever the
number of tasks). The penalty is the paper's eq. 3 form, λ Σ Ω (θ − θ*)² (no ½).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, Field

from continual_core.fields import FiniteFloat, PositiveInt
from continual_core.fisher_dense import DenseChain
from continual_core.lazy import tf
from continual_core.methods.base import FinishedTask, Method, MethodConfig, Step
from continual_core.seeds import seed_for

#: λ when `mas.lambda` is not given: MAS_LAMBDA_SCALE / T², T = the number of tasks of the
#: stream. Ω accumulates over tasks (the penalty stiffens with every task) and the network
#: must leave room for more tasks, so the best λ falls with T; measured with
#: `bench/science.py --only sweeps` (mlp, mnist-5k permute, 5 epochs per task, seed 0) the best
#: λ was 0.1-0.3 at 3 tasks, 0.12 at 5 and 0.02 at 10 (λ = 0.3 at 10 tasks scores BELOW
#: fine-tuning), i.e. ≈ 2 / T². Seeds 0-2 at 2/T²: 81.0 % on 10 tasks (fine-tuning 73.2),
#: forgetting 0.8 pp on 3 (fine-tuning 8.6); 3/T² learns the 3rd task less well (84.4 %).
MAS_LAMBDA_SCALE = 2.0


def default_mas_lambda(num_tasks: int) -> float:
    """The documented default λ for a stream of `num_tasks` tasks: 2 / T²."""
    return MAS_LAMBDA_SCALE / float(num_tasks) ** 2


#: Upper bound of per-example gradient floats held at once (as the Fisher's).
MAX_JACOBIAN_FLOATS = 64 * 1024 * 1024


class MASConfig(MethodConfig):
    """Memory Aware Synapses: λ · Σ Ω (θ − θ*)², Ω = mean |∂‖logits‖²/∂θ| (label-free)."""

    label: ClassVar[str] = "MAS (memory aware synapses)"
    flag_help: ClassVar[str] = "Enable Memory Aware Synapses."

    lambda_: FiniteFloat | None = Field(
        default=None,
        alias="lambda",
        title="λ",
        ge=0,
        description="MAS strength λ in λ·ΣΩ(θ−θ*)² (the paper's form, no ½). Default: 2 / T² "
        "for a stream of T tasks (0.22 at 3 tasks, 0.02 at 10: the best λ falls with T).",
    )
    samples: PositiveInt = Field(
        default=200, description="Examples used to estimate the MAS importance (labels unused)."
    )

    def resolve(self, spec: BaseModel) -> None:
        if self.lambda_ is None:
            self.lambda_ = default_mas_lambda(spec.num_tasks)  # type: ignore[attr-defined]


class MASImportance:
    """Ω = (1/N) Σ_n |∂ ‖f(x_n)‖₂² / ∂θ| per trainable variable, f = the logits (inference
    mode), from `samples` training examples drawn like the Fisher's (stream 1 of (seed, task)).

    The sums come from one compiled function, traced once: for a chain of Dense layers
    |A|ᵀ|G| per layer from one backward pass (`continual_core.fisher_dense`), otherwise a
    `tf.vectorized_map` of per-example gradients.
    """

    def __init__(self, model: Any, spec: Any):
        self.model, self.spec = model, spec
        self.variables = list(model.trainable_variables)
        self.num_params = int(sum(np.prod(v.shape) for v in self.variables))
        self.chain = DenseChain.of(model, self.variables)
        x_spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)
        sums = self._dense_abs_gradient_sum if self.chain else self._abs_gradient_sum
        self.abs_gradient_sum = tf.function(
            sums, input_signature=[x_spec], autograph=self.chain is None
        )

    def _dense_abs_gradient_sum(self, x: Any) -> list[Any]:
        def norm(out: Any) -> Any:
            return tf.reduce_sum(tf.square(out), axis=-1)

        return self.chain.gradient_sums(x, norm, tf.abs, self.variables)

    def _abs_gradient_sum(self, x: Any) -> list[Any]:
        def abs_gradient(xi: Any) -> list[Any]:
            with tf.GradientTape() as tape:
                out = self.model(xi[None], training=False)
                norm = tf.reduce_sum(tf.square(out))
            return [tf.abs(g) for g in tape.gradient(norm, self.variables)]

        per_example = tf.vectorized_map(abs_gradient, x)
        return [tf.reduce_sum(g, axis=0) for g in per_example]

    def importance(self, x: Any) -> list[Any]:
        """Ω from the examples `x` (all of them), chunked to bound memory."""
        x = tf.convert_to_tensor(x, tf.float32)
        n = int(x.shape[0])
        chunk = max(1, n if self.chain else min(n, MAX_JACOBIAN_FLOATS // max(1, self.num_params)))
        total: list[Any] | None = None
        for start in range(0, n, chunk):
            part = self.abs_gradient_sum(x[start : start + chunk])
            total = part if total is None else [a + b for a, b in zip(total, part)]
        assert total is not None
        return [t / float(n) for t in total]

    def reuse(self, fresh: MASImportance) -> None:
        """For another job of the same graph: its spec (the seed of the sample)."""
        self.spec = fresh.spec

    def estimate(self, x: np.ndarray, y: np.ndarray, task: int, samples: int) -> list[Any]:
        rng = np.random.default_rng(seed_for(self.spec, task, 1))
        idx = rng.choice(len(x), size=samples, replace=samples > len(x))
        return self.importance(x[idx])


def mas_importance_naive(model: Any, x: np.ndarray) -> list[np.ndarray]:
    """Reference: one eager GradientTape per example (slow; tests)."""
    variables = list(model.trainable_variables)
    total = [np.zeros(v.shape, np.float32) for v in variables]
    for n in range(len(x)):
        with tf.GradientTape() as tape:
            norm = tf.reduce_sum(tf.square(model(x[n : n + 1], training=False)))
        for t, g in zip(total, tape.gradient(norm, variables)):
            t += np.abs(g.numpy())
    return [t / len(x) for t in total]


class MemoryAwareSynapses:
    """MAS state: the accumulated importance Ω and the anchor θ* (the weights after the
    latest finished task), one pair per variable."""

    def __init__(self, variables: Sequence[Any], lam: float):
        #: λ, a variable: the compiled step reads it, so a job of another λ reuses it.
        self.lam = tf.Variable(float(lam), trainable=False, name="mas_lambda")
        self.omega = [tf.Variable(tf.zeros(v.shape, tf.float32), trainable=False, name="mas_omega")
                      for v in variables]  # fmt: skip
        self.anchor = [tf.Variable(tf.zeros(v.shape, tf.float32), trainable=False, name="mas_anchor")
                       for v in variables]  # fmt: skip

    @property
    def state(self) -> list[Any]:
        return [*self.omega, *self.anchor]

    def penalty(self, variables: Sequence[Any]) -> Any:
        """λ · Σ_i Ω_i (θ_i − θ*_i)² (scalar; 0 before the first task ends, Ω being 0)."""
        total = tf.add_n([tf.reduce_sum(o * tf.square(v - a))
                          for v, o, a in zip(variables, self.omega, self.anchor)])  # fmt: skip
        return self.lam * total

    def consolidate(self, importance: Sequence[Any], variables: Sequence[Any]) -> None:
        """Ω += the finished task's importance; θ* = the current weights."""
        for imp, v, o, a in zip(importance, variables, self.omega, self.anchor):
            o.assign_add(imp)
            a.assign(v)


class MAS(Method):
    """The penalty in the loss; after each task, its importance joins Ω and θ* moves."""

    name = "mas"
    Config = MASConfig
    estimators = (MASImportance,)  # type: ignore[assignment]
    values = frozenset({"lambda_", "samples"})

    def __init__(self, config: MASConfig, learner: Any):
        super().__init__(config, learner)
        self.weights = learner.weights
        self.synapses = MemoryAwareSynapses(self.weights, float(config.lambda_ or 0.0))

    def penalty(self, step: Step) -> Any:
        return self.synapses.penalty(self.weights)

    def end_task(self, finished: FinishedTask) -> dict[str, float]:
        importance = finished.importance(MASImportance, self.config.samples)  # type: ignore[attr-defined]
        self.synapses.consolidate(importance, self.weights)
        return {}

    def state(self) -> list[Any]:
        return self.synapses.state
