"""Elastic Weight Consolidation: λ/2 · Σ_k Σ_i F_k,i (θ_i − θ*_k,i)², in constant memory.

Expanding the square, the sum over finished tasks is one quadratic:
    Σ_k F_k (θ − θ*_k)² = A θ² − 2 B θ + C,  A = Σ_k F_k,  B = Σ_k F_k θ*_k,  C = Σ_k F_k θ*_k²
so the state is A and B per weight plus the scalar Σ_i C_i, whatever the number of tasks.
F_k is the spec's Fisher estimate after task k, θ*_k the weights then.

Two variants keep that state and that penalty, and change only how a task joins it:
- online EWC (Schwarz et al. 2018, `gamma` γ < 1): one quadratic around the latest weights
  θ* with the running Fisher F̃ ← γF̃ + F, i.e. A ← γA + F, B ← Aθ*, c ← ΣAθ*². The
  default when no λ is given (γ = 0.9): the summed penalty grows with every finished task,
  so one λ cannot suit both 3 and 10 tasks, while the running Fisher stays bounded.
- `normalize` (γ = 1): the mean, not the sum, of the finished tasks' quadratics.
γ = 1 without `normalize` is the plain sum above, computed exactly as before (the meaning
of an explicit λ).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic import BaseModel, Field

from continual_core.fields import FiniteFloat, PositiveInt
from continual_core.lazy import tf
from continual_core.methods.base import FinishedTask, Method, MethodConfig, Step

#: λ used when `ewc.lambda` is not given, per Fisher estimator. The estimators differ in
#: scale by about three orders of magnitude (mean 0.25 for the original's
#: sum-of-log-probabilities gradient against 0.0013 for the label log-likelihood), so one
#: number cannot serve all three. Measured with `bench/science.py` (mlp, mnist-5k, 3-task
#: permute; README "Estimators and λ scale"): λ = 100 is best or tied-best for
#: empirical/sampled (300 is within ±0.2 pp over 10 seeds), and the original's 0.1 ties 0.3
#: for `seed`.
DEFAULT_EWC_LAMBDA: dict[str, float] = {"empirical": 100.0, "sampled": 100.0, "seed": 0.1}
#: γ used when neither `ewc.lambda` nor `ewc.gamma` is given: online EWC. Measured with
#: `bench/science.py --only sweeps` (mlp, mnist-5k, permute, seeds 0-2): on 10 tasks the summed
#: penalty at λ = 100 scores below fine-tuning (72.6 % against 73.2 %), γ = 0.9 scores 80.1 %
#: (0.7: 80.5 %, 0.5: 80.9 %), and on 3 tasks it still halves forgetting.
DEFAULT_EWC_GAMMA = 0.9
#: The default λ is this many times larger with one output head per task (`heads: multi`,
#: task-IL): each head separates only its task's classes, the loss ends near zero and the
#: Fisher is small. Measured (split mnist-5k, 5 tasks, seeds 0-2): λ = 100 gives 94.8 %
#: (fine-tuning 94.5 %), λ = 1000 95.8 % online (96.1 % summed), 1e4 95.0 %, 1e5 88.7 %.
MULTI_HEAD_SCALE = 10.0


class EWCConfig(MethodConfig):
    """Elastic Weight Consolidation: λ/2 · Σ_k Σ_i F_k,i (θ_i − θ*_k,i)²."""

    label: ClassVar[str] = "EWC"
    flag_help: ClassVar[str] = "Enable Elastic Weight Consolidation."

    lambda_: FiniteFloat | None = Field(
        default=None,
        alias="lambda",
        title="λ",
        ge=0,
        description="EWC strength λ. Default: 100 for the empirical/sampled Fisher, 0.1 (the "
        "original's) for the seed Fisher; 10× that with heads=multi.",
    )
    samples: PositiveInt = Field(
        default=100, description="Examples used to estimate the EWC Fisher."
    )
    gamma: FiniteFloat | None = Field(
        default=None,
        gt=0,
        le=1,
        title="γ",
        description="Online EWC decay γ: below 1, one penalty around the latest weights with "
        "the running Fisher γF̃ + F (Schwarz et al. 2018); 1 = one penalty per finished task "
        "(the original EWC). Default: 0.9 when λ is not given (the summed penalty grows with "
        "every task, so one λ cannot suit both short and long streams), 1 when it is (an "
        "explicit λ means what it always did).",
    )
    normalize: bool = Field(
        default=False,
        description="With γ = 1: divide the summed penalty by the number of finished tasks "
        "(their mean), so λ keeps its scale on long streams.",
    )

    def resolve(self, spec: BaseModel) -> None:
        if self.gamma is None:
            given = self.lambda_ is not None or self.normalize
            self.gamma = 1.0 if given else DEFAULT_EWC_GAMMA
        if self.normalize and self.gamma != 1.0:
            raise ValueError("normalize: only with gamma = 1 (online EWC's running Fisher is "
                             "already bounded)")
        if self.lambda_ is None:
            scale = MULTI_HEAD_SCALE if getattr(spec, "heads", None) == "multi" else 1.0
            self.lambda_ = DEFAULT_EWC_LAMBDA[spec.fisher] * scale  # type: ignore[attr-defined]


def _zeros_like(v: Any, name: str) -> Any:
    return tf.Variable(tf.zeros(v.shape, tf.float32), trainable=False, name=name)


class ElasticWeightConsolidation:
    """Constant-memory EWC state (A = ΣF, B = ΣFθ*, c = ΣΣFθ*²) and its penalty."""

    def __init__(self, variables: Sequence[Any], lam: float):
        #: λ/2, a variable: the compiled step reads it, so a job of another λ reuses it.
        self.half_lambda = tf.Variable(0.5 * float(lam), trainable=False, name="ewc_half_lambda")
        self.fisher_sum = [_zeros_like(v, "ewc_fisher_sum") for v in variables]
        self.fisher_theta_sum = [_zeros_like(v, "ewc_fisher_theta_sum") for v in variables]
        self.fisher_theta_sq_sum = tf.Variable(0.0, trainable=False, name="ewc_fisher_theta_sq_sum")

    @property
    def state(self) -> list[Any]:
        """Every variable of the EWC state (for checkpoints)."""
        return [*self.fisher_sum, *self.fisher_theta_sum, self.fisher_theta_sq_sum]

    def penalty(self, variables: Sequence[Any]) -> Any:
        """λ/2 · Σ_k Σ_i F_k,i (θ_i − θ*_k,i)², computed as λ/2 · (Σ Aθ² − 2Bθ + c) (scalar)."""
        total = tf.convert_to_tensor(self.fisher_theta_sq_sum)
        for theta, a, b in zip(variables, self.fisher_sum, self.fisher_theta_sum):
            total += tf.reduce_sum(a * tf.square(theta) - 2.0 * b * theta)
        return self.half_lambda * total

    def consolidate(self, fisher: Sequence[Any], variables: Sequence[Any]) -> None:
        """Add the finished task's quadratic: A += F, B += Fθ*, c += ΣFθ*² at θ* = `variables`."""
        for f, theta, a, b in zip(fisher, variables, self.fisher_sum, self.fisher_theta_sum):
            a.assign_add(f)
            b.assign_add(f * theta)
            self.fisher_theta_sq_sum.assign_add(tf.reduce_sum(f * tf.square(theta)))

    def consolidate_mean(self, fisher: Sequence[Any], variables: Sequence[Any], n: int) -> None:
        """The mean of the n finished tasks' quadratics: each of A, B, c ← (n−1)/n · it +
        1/n · the finished task's (F, Fθ*, ΣFθ*²)."""
        keep, new = (n - 1) / n, 1.0 / n
        c = keep * self.fisher_theta_sq_sum
        for f, theta, a, b in zip(fisher, variables, self.fisher_sum, self.fisher_theta_sum):
            a.assign(keep * a + new * f)
            b.assign(keep * b + new * f * theta)
            c += new * tf.reduce_sum(f * tf.square(theta))
        self.fisher_theta_sq_sum.assign(c)

    def consolidate_online(self, fisher: Sequence[Any], variables: Sequence[Any], gamma: float) -> None:
        """Online EWC: A ← γA + F (the running Fisher F̃), anchored at θ* = `variables`:
        B ← Aθ*, c ← ΣAθ*²."""
        c = tf.constant(0.0)
        for f, theta, a, b in zip(fisher, variables, self.fisher_sum, self.fisher_theta_sum):
            a.assign(gamma * a + f)
            b.assign(a * theta)
            c += tf.reduce_sum(a * tf.square(theta))
        self.fisher_theta_sq_sum.assign(c)


class EWC(Method):
    """The penalty in the loss; after each task, the Fisher and the weights join it (summed,
    averaged with `normalize`, or as online EWC's running Fisher with γ < 1)."""

    name = "ewc"
    Config = EWCConfig
    estimators = ("fisher",)
    values = frozenset({"lambda_", "samples", "gamma", "normalize"})

    def __init__(self, config: EWCConfig, learner: Any):
        super().__init__(config, learner)
        self.weights = learner.weights
        self.quadratic = ElasticWeightConsolidation(self.weights, float(config.lambda_ or 0.0))

    def penalty(self, step: Step) -> Any:
        return self.quadratic.penalty(self.weights)

    def end_task(self, finished: FinishedTask) -> dict[str, float]:
        config: EWCConfig = self.config  # type: ignore[assignment]
        fisher = finished.importance("fisher", config.samples)
        if config.gamma is not None and config.gamma < 1.0:
            self.quadratic.consolidate_online(fisher, self.weights, config.gamma)
        elif config.normalize:
            self.quadratic.consolidate_mean(fisher, self.weights, finished.index)
        else:
            self.quadratic.consolidate(fisher, self.weights)
        return {}

    def state(self) -> list[Any]:
        return self.quadratic.state
