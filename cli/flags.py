"""The original project's command-line flags, as Typer options, turned into an
`ExperimentSpec`.

Both `ewc run` (train here) and `ewc submit` (train on the service) take these flags, with
the original's names and defaults; the defaults are read from `ExperimentSpec` so there is
one source of truth. `spec_from_flags` validates through the spec and turns a validation
error into a message naming the flag.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from continual_core.spec import (
    DATASET_UPDATES,
    DATASETS,
    FISHER_ESTIMATORS,
    MODELS,
    EWCConfig,
    ExperimentSpec,
    FIMConfig,
    IncDetConfig,
    validation_problems,
)

_F = ExperimentSpec.model_fields


def _default(name: str) -> Any:
    return _F[name].default


def _choices(values: tuple[str, ...]) -> str:
    return ", ".join(f'"{v}"' for v in values)


BatchSize = Annotated[int, typer.Option("--batch-size", help="Inputs per training step.")]
Epochs = Annotated[
    int,
    typer.Option(
        "--epochs",
        help="Total epochs, shared among the tasks. The remainder of epochs/splits is "
        "spread over the first tasks (the original silently dropped it).",
    ),
]
LearningRate = Annotated[float, typer.Option("--learning-rate", help="Adam learning rate.")]
Model = Annotated[str, typer.Option("--model", help=f"Network: {_choices(MODELS)}.")]
Dataset = Annotated[
    str | None,
    typer.Option(
        "--dataset",
        help=f"Dataset: {_choices(DATASETS)}. Default: mnist for mlp/lenet, cifar10 for "
        "cifarnet. mnist-5k, digits and synthetic need no download.",
        show_default=False,
    ),
]
DatasetUpdate = Annotated[
    str,
    typer.Option("--dataset-update", help=f"Task stream: {_choices(DATASET_UPDATES)}."),
]
Splits = Annotated[int, typer.Option("--splits", help="Number of tasks (full forces 1).")]
Ewc = Annotated[bool, typer.Option("--ewc", help="Enable Elastic Weight Consolidation.")]
EwcLambda = Annotated[
    float | None,
    typer.Option(
        "--ewc-lambda",
        help="EWC strength λ. Default: 100 for the empirical/sampled Fisher, 0.1 (the "
        "original's) for --fisher seed.",
        show_default=False,
    ),
]
EwcSamples = Annotated[
    int, typer.Option("--ewc-samples", help="Examples used to estimate the EWC Fisher.")
]
Fim = Annotated[bool, typer.Option("--fim", help="Enable Fisher information masking.")]
FimThreshold = Annotated[
    float | None,
    typer.Option(
        "--fim-threshold",
        help="Freeze weights whose Fisher is ≥ this. Default: 3e-4 for empirical, 1e-3 for "
        "sampled, 0.3 for --fisher seed (the original's 1e-6 freezes most weights there).",
        show_default=False,
    ),
]
FimSamples = Annotated[
    int, typer.Option("--fim-samples", help="Examples used to estimate the FIM Fisher.")
]
Incdet = Annotated[bool, typer.Option("--incdet", help="Enable IncDet gradient clipping.")]
IncdetThreshold = Annotated[
    float, typer.Option("--incdet-threshold", help="IncDet clipping threshold b.")
]
Seed = Annotated[int, typer.Option("--seed", help="Seed of every random choice.")]
Fisher = Annotated[
    str,
    typer.Option(
        "--fisher",
        help=f"Fisher estimator: {_choices(FISHER_ESTIMATORS)} (seed = the original's).",
    ),
]
ResetOptimizer = Annotated[
    bool,
    typer.Option(
        "--reset-optimizer", help="New Adam at every task (the original's EWC behaviour)."
    ),
]
Augment = Annotated[
    bool,
    typer.Option(
        "--augment", help="Random translation (+ flip on CIFAR) in training steps only."
    ),
]
SpecFile = Annotated[
    Path | None,
    typer.Option(
        "--spec",
        help="JSON file with a spec; flags given on the command line override it.",
        exists=True,
        dir_okay=False,
        show_default=False,
    ),
]

DEFAULTS: dict[str, Any] = {
    "batch_size": _default("batch_size"),
    "epochs": _default("epochs"),
    "learning_rate": _default("learning_rate"),
    "model": _default("model"),
    "dataset_update": _default("dataset_update"),
    "splits": _default("splits"),
    "ewc_samples": EWCConfig.model_fields["samples"].default,
    "fim_samples": FIMConfig.model_fields["samples"].default,
    "incdet_threshold": IncDetConfig.model_fields["threshold"].default,
    "seed": _default("seed"),
    "fisher": _default("fisher"),
}

#: Spec field → the flag that sets it, for error messages.
FLAG_OF_FIELD = {
    "batch_size": "--batch-size",
    "epochs": "--epochs",
    "learning_rate": "--learning-rate",
    "model": "--model",
    "dataset": "--dataset",
    "dataset_update": "--dataset-update",
    "splits": "--splits",
    "ewc.lambda": "--ewc-lambda",
    "ewc.samples": "--ewc-samples",
    "fim.threshold": "--fim-threshold",
    "fim.samples": "--fim-samples",
    "incdet.threshold": "--incdet-threshold",
    "seed": "--seed",
    "fisher": "--fisher",
}


def spec_from_flags(
    *,
    batch_size: int,
    epochs: int,
    learning_rate: float,
    model: str,
    dataset: str | None,
    dataset_update: str,
    splits: int,
    ewc: bool,
    ewc_lambda: float | None,
    ewc_samples: int,
    fim: bool,
    fim_threshold: float | None,
    fim_samples: int,
    incdet: bool,
    incdet_threshold: float,
    seed: int,
    fisher: str,
    reset_optimizer: bool = False,
    augment: bool = False,
    spec_file: Path | None = None,
    extra: dict[str, Any] | None = None,
) -> ExperimentSpec:
    """Build and validate a spec from the original flags.

    With `spec_file`, the file is the base and only flags whose value differs from the
    default override it. Raises `typer.BadParameter` naming the flag on invalid input.
    """
    flags: dict[str, Any] = {
        "batch_size": batch_size,
        "epochs": epochs,
        "learning_rate": learning_rate,
        "model": model,
        "dataset_update": dataset_update,
        "splits": splits,
        "seed": seed,
        "fisher": fisher,
    }
    data: dict[str, Any] = {}
    if spec_file is not None:
        try:
            data = json.loads(spec_file.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise typer.BadParameter(f"cannot read {spec_file}: {exc}", param_hint="--spec")
        if not isinstance(data, dict):
            raise typer.BadParameter(f"{spec_file} must hold a JSON object", param_hint="--spec")
        flags = {k: v for k, v in flags.items() if v != DEFAULTS[k]}
    data.update(flags)
    if dataset is not None:
        data["dataset"] = dataset
    if reset_optimizer:
        data["reset_optimizer"] = True
    if augment:
        data["augment"] = True
    if ewc:
        data["ewc"] = {"samples": ewc_samples}
        if ewc_lambda is not None:
            data["ewc"]["lambda"] = ewc_lambda
    if fim:
        data["fim"] = {"samples": fim_samples}
        if fim_threshold is not None:
            data["fim"]["threshold"] = fim_threshold
    if incdet:
        data["incdet"] = {"threshold": incdet_threshold}
    data.update(extra or {})
    try:
        return ExperimentSpec.model_validate(data)
    except ValidationError as exc:
        raise typer.BadParameter("; ".join(describe_flag_errors(exc))) from None


def describe_flag_errors(exc: ValidationError) -> list[str]:
    """One line per problem, naming the command-line flag (or spec field) and what is allowed."""
    return [f"{FLAG_OF_FIELD.get(field, field)}: {msg}" for field, msg in validation_problems(exc)]


def _original_flags(
    batch_size: BatchSize = DEFAULTS["batch_size"],
    epochs: Epochs = DEFAULTS["epochs"],
    learning_rate: LearningRate = DEFAULTS["learning_rate"],
    model: Model = DEFAULTS["model"],
    dataset: Dataset = None,
    dataset_update: DatasetUpdate = DEFAULTS["dataset_update"],
    splits: Splits = DEFAULTS["splits"],
    ewc: Ewc = False,
    ewc_lambda: EwcLambda = None,
    ewc_samples: EwcSamples = DEFAULTS["ewc_samples"],
    fim: Fim = False,
    fim_threshold: FimThreshold = None,
    fim_samples: FimSamples = DEFAULTS["fim_samples"],
    incdet: Incdet = False,
    incdet_threshold: IncdetThreshold = DEFAULTS["incdet_threshold"],
    seed: Seed = DEFAULTS["seed"],
    fisher: Fisher = DEFAULTS["fisher"],
    reset_optimizer: ResetOptimizer = False,
    augment: Augment = False,
) -> None:
    """The signature that declares the original flags once (never called)."""


#: The flags as keyword-only parameters with their annotations resolved, for Typer.
FLAG_PARAMETERS: list[inspect.Parameter] = [
    p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
    for p in inspect.signature(_original_flags, eval_str=True).parameters.values()
]


@dataclass(frozen=True)
class SpecFlags:
    """The original flags as given on a command line; `to_spec()` validates them."""

    values: dict[str, Any]

    def to_spec(
        self, *, spec_file: Path | None = None, extra: dict[str, Any] | None = None
    ) -> ExperimentSpec:
        """The validated spec (see `spec_from_flags`); raises typer.BadParameter."""
        return spec_from_flags(**self.values, spec_file=spec_file, extra=extra)


def with_spec_flags(command: Callable[..., Any]) -> Callable[..., Any]:
    """Give a Typer command every original flag.

    The command declares its own options plus a `flags: SpecFlags` parameter; the wrapper
    Typer sees has the original flags (`--batch-size` ... `--augment`) and the command's own
    options, and hands the flags over as one `SpecFlags`.
    """
    own = inspect.signature(command, eval_str=True).parameters
    params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for n, p in own.items() if n != "flags"]

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> Any:
        values = {p.name: kwargs.pop(p.name) for p in FLAG_PARAMETERS}
        return command(flags=SpecFlags(values), **kwargs)

    wrapper.__signature__ = inspect.Signature([*FLAG_PARAMETERS, *params])  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in (*FLAG_PARAMETERS, *params)}
    del wrapper.__wrapped__  # Typer must read the new signature, not the command's
    return wrapper
