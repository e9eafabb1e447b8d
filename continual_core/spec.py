"""`ExperimentSpec`: the one definition of every experiment option.

The command line (`ewc run`, `ewc submit`), the JSON body of `POST /v1/experiments` and the
worker all go through this model, so an option is added here once. It imports neither
TensorFlow nor anything of the service: the API validates request bodies with it.

Every flag of the original project keeps its meaning and default. Where the original was
wrong (epochs silently dropped, EWC + FIM silently ignoring FIM, an estimator-specific λ),
the behaviour here is explicit and documented on the field.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

ModelName = Literal["mlp", "lenet", "cifarnet"]
DatasetName = Literal["mnist", "cifar10", "cifar100", "mnist-5k", "digits", "synthetic"]
DatasetUpdate = Literal["full", "permute", "increment", "switch"]
FisherEstimator = Literal["empirical", "sampled", "seed"]
DeviceClass = Literal["any", "cpu", "gpu"]

MODELS: tuple[str, ...] = ("mlp", "lenet", "cifarnet")
DATASETS: tuple[str, ...] = ("mnist", "cifar10", "cifar100", "mnist-5k", "digits", "synthetic")
DATASET_UPDATES: tuple[str, ...] = ("full", "permute", "increment", "switch")
FISHER_ESTIMATORS: tuple[str, ...] = ("empirical", "sampled", "seed")

#: Input shape (height, width, channels) and class count of each named dataset.
DATASET_SHAPES: dict[str, tuple[tuple[int, int, int], int]] = {
    "mnist": ((28, 28, 1), 10),
    "mnist-5k": ((28, 28, 1), 10),
    "digits": ((8, 8, 1), 10),
    "cifar10": ((32, 32, 3), 10),
    "cifar100": ((32, 32, 3), 100),
}

#: The dataset a model trains on when none is named (the original's rule).
DEFAULT_DATASET: dict[str, str] = {"mlp": "mnist", "lenet": "mnist", "cifarnet": "cifar10"}

#: λ used when `ewc.lambda` is not given, per Fisher estimator. The estimators differ in
#: scale by about three orders of magnitude (docs/original.md: mean 0.25 for the original's
#: sum-of-log-probabilities gradient against 0.0013 for the label log-likelihood), so one
#: number cannot serve all three. Measured with `bench/science.py` (mlp, mnist-5k, 3-task
#: permute; README "Estimators and λ scale"): λ = 100 is best or tied-best for
#: empirical/sampled (300 is within ±0.2 pp over 10 seeds), and the original's 0.1 ties 0.3
#: for `seed`.
DEFAULT_EWC_LAMBDA: dict[str, float] = {"empirical": 100.0, "sampled": 100.0, "seed": 0.1}

#: FIM threshold used when `fim.threshold` is not given, per Fisher estimator. Measured
#: with `bench/science.py` (same setup, paired over 10 seeds): 3e-4 beats 1e-4 by +0.55 pp
#: for empirical (1e-3 is no better and forgets 2.5× more, 3e-3 collapses); 1e-3 is best
#: for sampled; for `seed` the original's 1e-6 freezes 64 % of the weights after task 1 and
#: scores below plain fine-tuning, while 0.3 is best (+1.0 pp over 0.1).
DEFAULT_FIM_THRESHOLD: dict[str, float] = {"empirical": 3e-4, "sampled": 1e-3, "seed": 0.3}

def _storable(text: str) -> str:
    """Free text every database stores alike: no NUL byte (PostgreSQL refuses it), no lone
    surrogate (JSON can carry "\\ud800"; UTF-8, so no database, cannot)."""
    if "\x00" in text:
        raise ValueError("must not contain NUL bytes (\\u0000)")
    if any("\ud800" <= c <= "\udfff" for c in text):
        raise ValueError("must be valid Unicode (it holds a lone surrogate such as \\ud800)")
    return text


#: A name or tag: stored by SQLite and PostgreSQL alike, so NUL bytes are refused.
StorableText = Annotated[str, AfterValidator(_storable)]
PositiveInt = Annotated[int, Field(gt=0)]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class EWCConfig(_Strict):
    """Elastic Weight Consolidation: λ/2 · Σ_k Σ_i F_k,i (θ_i − θ*_k,i)²."""

    lambda_: FiniteFloat | None = Field(
        default=None,
        alias="lambda",
        ge=0,
        description="Penalty strength. Default depends on the Fisher estimator: "
        "100 for empirical/sampled, 0.1 (the original's) for seed.",
    )
    samples: PositiveInt = Field(
        default=100, description="Training examples used to estimate the Fisher after each task."
    )


class FIMConfig(_Strict):
    """Fisher information masking: freeze every weight whose Fisher value is ≥ threshold."""

    threshold: FiniteFloat | None = Field(
        default=None,
        gt=0,
        description="Freeze weights with Fisher ≥ threshold. Default depends on the Fisher "
        "estimator: 3e-4 for empirical, 1e-3 for sampled, 0.3 for seed (the original's "
        "1e-6 freezes most of the network on the seed scale).",
    )
    samples: PositiveInt = Field(
        default=100, description="Training examples used to estimate the Fisher after each task."
    )


class IncDetConfig(_Strict):
    """IncDet gradient clipping: each gradient element g becomes g · b / max(b, |g|)."""

    threshold: FiniteFloat = Field(default=1e-6, gt=0, description="The clipping threshold b.")


class SyntheticConfig(_Strict):
    """Shape of the seeded `synthetic` dataset (class-dependent Gaussian blobs)."""

    height: PositiveInt = 28
    width: PositiveInt = 28
    channels: PositiveInt = 1
    classes: Annotated[int, Field(ge=2, le=1000)] = 10
    train_size: Annotated[int, Field(ge=10)] = 2000
    test_size: Annotated[int, Field(ge=10)] = 500


class ExperimentSpec(_Strict):
    """Everything needed to reproduce one continual-learning run.

    Field names follow the original flags with dashes turned into underscores
    (`--dataset-update` → `dataset_update`). `ewc`, `fim` and `incdet` are off when null and
    on when an object (possibly empty, to take the defaults) is given.
    """

    model: ModelName = Field(default="mlp", description="Network: mlp, lenet or cifarnet.")
    dataset: DatasetName | None = Field(
        default=None,
        description="Dataset; defaults to mnist for mlp/lenet and cifar10 for cifarnet. "
        "Offline: mnist-5k (5,000 real MNIST digits), digits (8x8), synthetic.",
    )
    dataset_update: DatasetUpdate = Field(
        default="full", description="How the data changes between tasks."
    )
    splits: PositiveInt = Field(
        default=5, description="Number of tasks (dataset_update=full forces 1)."
    )
    epochs: PositiveInt = Field(
        default=20,
        description="Total epochs, shared among the tasks. Unlike the original (epochs // "
        "splits, remainder dropped), the remainder is spread: the first epochs % splits tasks "
        "get one more epoch, so every requested epoch runs.",
    )
    batch_size: PositiveInt = Field(default=256)
    learning_rate: FiniteFloat = Field(default=0.001, gt=0, description="Adam learning rate.")
    ewc: EWCConfig | None = None
    fim: FIMConfig | None = None
    incdet: IncDetConfig | None = None
    fisher: FisherEstimator = Field(
        default="empirical",
        description="Fisher estimator: empirical (gradient of the true label's "
        "log-likelihood), sampled (label drawn from the model), seed (the original's gradient "
        "of the sum of all log-probabilities).",
    )
    reset_optimizer: bool = Field(
        default=False,
        description="Re-create Adam at every task, as the original did with EWC. Off: one "
        "Adam across tasks.",
    )
    augment: bool = Field(
        default=False,
        description="Random translation (and horizontal flip for CIFAR) during training "
        "steps only. The original always augmented, which scrambles permuted tasks.",
    )
    seed: Annotated[int, Field(ge=0, lt=2**31)] = Field(
        default=0, description="Every random choice (init, shuffles, permutations, Fisher)."
    )
    synthetic: SyntheticConfig | None = Field(
        default=None, description="Shape of the synthetic dataset (dataset=synthetic only)."
    )
    # Scheduling and bookkeeping: the training core ignores these.
    name: Annotated[StorableText, Field(max_length=200)] | None = None
    tags: Annotated[
        list[Annotated[StorableText, Field(min_length=1, max_length=64)]], Field(max_length=32)
    ] = Field(
        default_factory=list
    )
    priority: Annotated[int, Field(ge=-100, le=100)] = Field(
        default=0, description="Higher runs first among the waiting jobs of a queue."
    )
    device: DeviceClass = Field(
        default="any", description="Worker class: gpu, cpu or any (the cpu queue)."
    )
    time_limit_s: Annotated[int, Field(gt=0)] | None = Field(
        default=None,
        description="Stop and fail the job after this many seconds (at most the server's limit).",
    )

    @field_validator("tags")
    @classmethod
    def _unique_tags(cls, tags: list[str]) -> list[str]:
        return list(dict.fromkeys(tags))

    @model_validator(mode="after")
    def _resolve_and_check(self) -> ExperimentSpec:
        if self.dataset is None:
            self.dataset = DEFAULT_DATASET[self.model]  # type: ignore[assignment]
        if self.dataset == "synthetic" and self.synthetic is None:
            self.synthetic = SyntheticConfig()
        if self.dataset != "synthetic" and self.synthetic is not None:
            raise ValueError("synthetic: only allowed with dataset='synthetic'")
        if self.dataset_update == "full" and self.splits != 1:
            self.splits = 1
        (height, width, _), classes = self.input_shape, self.num_classes
        if self.dataset_update in ("increment", "switch") and self.splits > classes:
            raise ValueError(
                f"splits: {self.splits} is more than the {classes} classes of "
                f"{self.dataset}; dataset_update={self.dataset_update} needs 1 ≤ splits ≤ {classes}"
            )
        if self.epochs < self.splits:
            raise ValueError(
                f"epochs: {self.epochs} is fewer than splits={self.splits}; every task needs at "
                f"least one epoch, so epochs must be ≥ {self.splits}"
            )
        if self.model == "lenet" and min(height, width) < 28:
            raise ValueError(
                f"model: lenet needs inputs of at least 28x28, {self.dataset} is "
                f"{height}x{width}; use mlp or cifarnet"
            )
        if self.ewc is not None and self.ewc.lambda_ is None:
            self.ewc.lambda_ = DEFAULT_EWC_LAMBDA[self.fisher]
        if self.fim is not None and self.fim.threshold is None:
            self.fim.threshold = DEFAULT_FIM_THRESHOLD[self.fisher]
        return self

    # Derived values -------------------------------------------------------------------

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(height, width, channels) of one input image."""
        if self.dataset == "synthetic":
            s = self.synthetic or SyntheticConfig()
            return (s.height, s.width, s.channels)
        return DATASET_SHAPES[str(self.dataset)][0]

    @property
    def num_classes(self) -> int:
        """Number of classes of the dataset (the size of the one shared output head)."""
        if self.dataset == "synthetic":
            return (self.synthetic or SyntheticConfig()).classes
        return DATASET_SHAPES[str(self.dataset)][1]

    @property
    def num_tasks(self) -> int:
        """Number of tasks in the stream (1 for `full`)."""
        return 1 if self.dataset_update == "full" else self.splits

    @property
    def epochs_per_task(self) -> list[int]:
        """Epochs of each task: `epochs` spread evenly, the remainder to the first tasks."""
        base, extra = divmod(self.epochs, self.num_tasks)
        return [base + (1 if k < extra else 0) for k in range(self.num_tasks)]

    @property
    def ewc_lambda(self) -> float:
        """The resolved EWC λ (0 when EWC is off)."""
        return float(self.ewc.lambda_) if self.ewc and self.ewc.lambda_ is not None else 0.0

    def to_json_dict(self) -> dict:
        """The spec as plain JSON types, with field aliases (`ewc.lambda`), defaults resolved."""
        return self.model_dump(mode="json", by_alias=True)


def validation_problems(exc: Exception) -> list[tuple[str, str]]:
    """(field, message) for each problem of a pydantic ValidationError.

    `field` is a dotted path (`ewc.lambda`); checks that span fields name the field they
    are about (`splits`, `epochs`). Messages say what is allowed.
    """
    errors = getattr(exc, "errors", None)
    if errors is None:
        return [("spec", str(exc))]
    problems = []
    for err in errors():
        loc = ".".join(str(p) for p in err.get("loc", ()))
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        field, sep, rest = msg.partition(": ")
        if sep and not loc and field.replace("_", "").replace(".", "").isalnum():
            problems.append((field, rest))
        else:
            if err.get("type") == "literal_error" and "expected" in err.get("ctx", {}):
                msg = f"{err['input']!r} is not allowed; choose one of {err['ctx']['expected']}"
            elif err.get("type") == "extra_forbidden":
                msg = "unknown field"
            problems.append((loc or "spec", msg))
    return problems
