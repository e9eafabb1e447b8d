"""`ExperimentSpec`: the one definition of every experiment option.

The command line (`ewc run`, `ewc submit`), the JSON body of `POST /v1/experiments` and the
worker all go through this model, so an option is added here once. It imports neither
TensorFlow nor anything of the service: the API validates request bodies with it.

Every flag of the original project keeps its meaning and default. Where the original was
wrong (epochs silently dropped, EWC + FIM silently ignoring FIM, an estimator-specific λ),
the behaviour here is explicit and documented on the field.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WithJsonSchema,
    WrapValidator,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from pydantic_core.core_schema import ErrorType

from continual_core import user_datasets as user
from continual_core.datasets import DATASETS as DATASET_ZOO
from continual_core.fields import FiniteFloat, HiddenWidths, PositiveInt, Strict
from continual_core.methods import METHODS, MethodConfig
from continual_core.methods.ewc import DEFAULT_EWC_LAMBDA, EWCConfig
from continual_core.methods.fim import DEFAULT_FIM_THRESHOLD, FIMConfig
from continual_core.methods.incdet import IncDetConfig
from continual_core.models import MODELS as MODEL_ZOO

__all__ = [
    "DEFAULT_EWC_LAMBDA",
    "DEFAULT_FIM_THRESHOLD",
    "EWCConfig",
    "ExperimentSpec",
    "FIMConfig",
    "FiniteFloat",
    "IncDetConfig",
    "PositiveInt",
    "SyntheticConfig",
    "validation_problems",
]

MODELS: tuple[str, ...] = tuple(MODEL_ZOO)
ModelName = Literal[MODELS]  # type: ignore[valid-type]
DATASETS: tuple[str, ...] = tuple(DATASET_ZOO)
DatasetName = Annotated[Literal[DATASETS], WrapValidator(user.dataset_choice), WithJsonSchema(user.dataset_schema(DATASETS))]  # type: ignore[valid-type]
DatasetUpdate = Literal["full", "permute", "increment", "switch"]
FisherEstimator = Literal["empirical", "sampled", "seed"]
DeviceClass = Literal["any", "cpu", "gpu"]
Heads = Literal["shared", "multi"]

DATASET_UPDATES: tuple[str, ...] = ("full", "permute", "increment", "switch")
FISHER_ESTIMATORS: tuple[str, ...] = ("empirical", "sampled", "seed")
HEADS: tuple[str, ...] = ("shared", "multi")

#: Input shape (height, width, channels) and class count of each named dataset.
DATASET_SHAPES: dict[str, tuple[tuple[int, int, int], int]] = {
    name: (d.shape, d.classes) for name, d in DATASET_ZOO.items() if d.shape and d.classes
}

#: The dataset a model trains on when none is named (the original's rule).
DEFAULT_DATASET: dict[str, str] = {name: m.default_dataset for name, m in MODEL_ZOO.items()}


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


class SyntheticConfig(Strict):
    """Shape of the seeded `synthetic` dataset (class-dependent Gaussian blobs)."""

    height: PositiveInt = 28
    width: PositiveInt = 28
    channels: PositiveInt = 1
    classes: Annotated[int, Field(ge=2, le=1000)] = 10
    train_size: Annotated[int, Field(ge=10)] = 2000
    test_size: Annotated[int, Field(ge=10)] = 500


class ExperimentSpec(Strict):
    """Everything needed to reproduce one continual-learning run.

    Field names follow the original flags with dashes turned into underscores
    (`--dataset-update` → `dataset_update`). Every registered method
    (`continual_core.methods.METHODS`: `ewc`, `fim`, `incdet`, ...) is a key too, off when
    null or absent and on when an object (possibly empty, to take the defaults) is given;
    its object is validated by the method's config model. `spec.ewc` reads it (None when
    off), `spec.methods` lists the active ones. Any other key is refused.
    """

    # The methods' keys are checked by `_methods_by_registry`, which keeps them as extras.
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    model: ModelName = Field(default="mlp", description=f"Network: {', '.join(MODELS)}.")
    dataset: DatasetName | None = Field(
        default=None,
        description="Dataset; defaults to mnist for mlp/lenet and cifar10 for cifarnet. "
        "Offline: mnist-5k (5,000 real MNIST digits), digits (8x8), synthetic. Uploaded: user:<name>.",
    )
    user_dataset: user.UserDatasetInfo | None = Field(default=None, description="dataset user:<name> "
        "only: its file's sha256, shape and classes, filled in by the server at submission.")  # fmt: skip
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
    heads: Heads = Field(
        default="shared",
        description="Output heads: shared (one head for every task: class-IL on switch/"
        "increment, domain-IL on permute) or multi (one head per task, each task trained and "
        "evaluated on its own: task-IL).",
    )
    hidden: HiddenWidths | None = Field(
        default=None,
        description="Hidden layer widths of mlp, e.g. [400, 400], \"400,400\" or \"400x400\" "
        "(default 100,100, the original's). mlp only.",
    )
    joint: bool = Field(
        default=False,
        description="Joint training, the upper bound: task k trains on the union of the "
        "training sets of tasks 1..k. permute or switch; takes no method.",
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
        (height, width, _), classes = user.checked_shape(self)  # user:<name>: once resolved
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
        entry = MODEL_ZOO[self.model]
        if self.hidden is None and entry.hidden is not None:
            self.hidden = list(entry.hidden)
        elif self.hidden is not None and entry.hidden is None:
            widths = [m for m, e in MODEL_ZOO.items() if e.hidden is not None]
            raise ValueError(f"hidden: {self.model} has a fixed architecture; only "
                             f"{', '.join(widths)} takes hidden widths")  # fmt: skip
        if self.heads == "multi" and self.dataset_update == "full":
            raise ValueError("heads: multi needs a task stream (dataset_update permute, "
                             "increment or switch); full is one task")  # fmt: skip
        if self.joint and self.dataset_update not in ("permute", "switch"):
            why = "is one task" if self.dataset_update == "full" else "already trains each task on every class so far"
            raise ValueError(f"joint: needs dataset_update permute or switch; {self.dataset_update} {why}")
        side = entry.min_side
        if min(height, width) < side:
            others = " or ".join(m for m, e in MODEL_ZOO.items() if e.min_side <= min(height, width))
            raise ValueError(
                f"model: {self.model} needs inputs of at least {side}x{side}, {self.dataset} is "
                f"{height}x{width}; use {others}"
            )
        return self

    @model_validator(mode="wrap")
    @classmethod
    def _methods_by_registry(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        """Validate each method's key with its config model (the registry is read now, so a
        method registered at run time is accepted), the rest as fields; refuse other keys.
        All problems are reported together, each at its own location (`ewc.lambda`)."""
        if not isinstance(data, dict):
            return handler(data)
        general: dict[str, Any] = {}
        configs: dict[str, MethodConfig] = {}
        errors: list[Any] = []
        for key, value in data.items():
            if key in cls.model_fields:
                general[key] = value
            elif key in METHODS:
                if value is None:
                    continue
                try:
                    configs[key] = METHODS[key].Config.model_validate(value)
                except ValidationError as exc:
                    errors += _relocated(exc, key)
            else:
                errors.append({"type": "extra_forbidden", "loc": (key,), "input": value})
        try:
            spec = handler(general)
        except ValidationError as exc:
            errors = [*_relocated(exc), *errors]
        if not errors and spec.joint and configs:
            refusal = ValueError("joint: joint training is the upper bound (every task's data, no "
                                 f"protection needed); it takes no method, got {', '.join(configs)}")
            errors.append({"type": "value_error", "loc": (), "input": data, "ctx": {"error": refusal}})
        if not errors:
            # the other active methods are visible to resolve (a config may refuse them)
            spec.__pydantic_extra__ = {name: configs.get(name) for name in METHODS}
            for config in configs.values():
                try:
                    config.resolve(spec)
                except ValueError as exc:
                    errors.append({"type": "value_error", "loc": (), "input": data,
                                   "ctx": {"error": exc}})  # fmt: skip
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        spec.__pydantic_extra__ = {name: configs.get(name) for name in METHODS}
        return spec

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: Any) -> dict[str, Any]:
        """The fields, plus one optional object per registered method; nothing else."""
        schema = handler(core_schema)
        target = handler.resolve_ref_schema(schema)
        for name, method in METHODS.items():
            config = handler(method.Config.__pydantic_core_schema__)
            target.setdefault("properties", {})[name] = {
                "anyOf": [config, {"type": "null"}],
                "default": None,
                "description": f"{method.Config.label or name}: off when null or absent.",
            }
        target["additionalProperties"] = False
        return schema

    # Derived values -------------------------------------------------------------------

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(height, width, channels) of one input image."""
        if self.dataset == "synthetic":
            s = self.synthetic or SyntheticConfig()
            return (s.height, s.width, s.channels)
        if user.is_user(self.dataset):
            return tuple(user.resolved(self).input_shape)  # type: ignore[return-value]
        return DATASET_SHAPES[str(self.dataset)][0]

    @property
    def num_classes(self) -> int:
        """Number of classes of the dataset (the size of the one shared output head)."""
        if self.dataset == "synthetic":
            return (self.synthetic or SyntheticConfig()).classes
        if user.is_user(self.dataset):
            return user.resolved(self).num_classes
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
    def scenario(self) -> str:
        """The continual-learning scenario: task-IL (a head per task), domain-IL (permute,
        one head), class-IL (switch/increment, one head) or single-task (full)."""
        if self.dataset_update == "full":
            return "single-task"
        if self.heads == "multi":
            return "task-IL"
        return "domain-IL" if self.dataset_update == "permute" else "class-IL"

    @property
    def methods(self) -> dict[str, MethodConfig]:
        """The active methods' configs by key, in registry order."""
        extra = self.__pydantic_extra__ or {}
        return {name: extra[name] for name in METHODS if extra.get(name) is not None}

    @property
    def ewc_lambda(self) -> float:
        """The resolved EWC λ (0 when EWC is off)."""
        ewc = self.methods.get("ewc")
        return float(ewc.lambda_) if isinstance(ewc, EWCConfig) and ewc.lambda_ is not None else 0.0

    def to_json_dict(self) -> dict:
        """The spec as plain JSON types, with field aliases (`ewc.lambda`), defaults resolved."""
        return self.model_dump(mode="json", by_alias=True)


_KNOWN_ERRORS = frozenset(get_args(ErrorType))


def _relocated(exc: ValidationError, *prefix: str) -> list[Any]:
    """The line errors of `exc` under `prefix` (for `ValidationError.from_exception_data`)."""
    out = []
    for err in exc.errors(include_url=False):
        detail: dict[str, Any] = {"type": err["type"], "loc": (*prefix, *err["loc"]),
                                  "input": err.get("input")}  # fmt: skip
        if err["type"] in _KNOWN_ERRORS:
            if "ctx" in err:
                detail["ctx"] = err["ctx"]
        else:  # a config's own PydanticCustomError: keep its type and message
            message = err["msg"].replace("{", "{{").replace("}", "}}")
            detail["type"] = PydanticCustomError(err["type"], message)
        out.append(detail)
    return out


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
