"""The original project's command-line flags, as Typer options, turned into an
`ExperimentSpec`.

`ewc run` (train here), `ewc submit` and `ewc sweep` (train on the service) take these
flags, with the original's names and defaults; the defaults are read from `ExperimentSpec`
so there is one source of truth. Each registered method's flags are generated from its
config model (`continual_core.methods`): `--<method>` switches it on, `--<method>-<field>`
sets a field, with the field's default and description (`--ewc`, `--ewc-lambda`,
`--ewc-samples`). The registry is read when a command line is parsed, so a method
registered at run time has its flags. `spec_from_flags` validates through the spec and
turns a validation error into a message naming the flag.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import NoneType, UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import typer
from pydantic import ValidationError
from pydantic.fields import FieldInfo

from continual_core.methods import METHODS, Method
from continual_core.spec import (
    DATASET_UPDATES,
    DATASETS,
    FISHER_ESTIMATORS,
    HEADS,
    MODELS,
    ExperimentSpec,
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
Heads = Annotated[
    str,
    typer.Option(
        "--heads",
        help=f"Output heads: {_choices(HEADS)}. multi = one head per task, each task trained "
        "and evaluated on its own (task-IL); shared = one for all (class-IL on switch, "
        "domain-IL on permute).",
    ),
]
Hidden = Annotated[
    str | None,
    typer.Option(
        "--hidden",
        help="Hidden layer widths of mlp, comma-separated (default 100,100, the original's).",
        show_default=False,
    ),
]
Joint = Annotated[
    bool,
    typer.Option(
        "--joint",
        help="Joint training (the upper bound): task k trains on the union of tasks 1..k. "
        "permute or switch; takes no method.",
    ),
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

#: The spec's own flags (not a method's) and their defaults.
GENERAL_DEFAULTS: dict[str, Any] = {
    name: _default(name)
    for name in ("batch_size", "epochs", "learning_rate", "model", "dataset_update", "splits",
                 "seed", "fisher", "heads", "hidden")
}  # fmt: skip


def method_field_key(info: FieldInfo, name: str) -> str:
    """A config field's key in the spec's JSON (its alias: `lambda`, else its name)."""
    return info.alias or name


def method_fields(method: type[Method]) -> list[tuple[str, str, FieldInfo]]:
    """(JSON key, parameter name, field) of each field of a method's config:
    ("lambda", "ewc_lambda", ...) for `ewc.lambda`."""
    return [
        (key, f"{method.name}_{key}", info)
        for name, info in method.Config.model_fields.items()
        for key in [method_field_key(info, name)]
    ]


def field_type(info: FieldInfo) -> type:
    """The plain Python type of a config field (int, float, str, bool), without None."""
    annotation = info.annotation
    if get_origin(annotation) in (Union, UnionType):
        annotation = next(a for a in get_args(annotation) if a is not NoneType)
    if get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) is Literal:
        return type(get_args(annotation)[0])
    return annotation if annotation in (int, float, str, bool) else str


def defaults() -> dict[str, Any]:
    """Every flag's default, by parameter name (methods off, their fields' defaults)."""
    values = dict(GENERAL_DEFAULTS)
    for method in METHODS.values():
        values[method.name] = False
        values.update({param: info.default for _, param, info in method_fields(method)})
    return values


def flag_of_field() -> dict[str, str]:
    """Spec field → the flag that sets it, for error messages (`ewc.lambda` → `--ewc-lambda`)."""
    flags = {name: "--" + name.replace("_", "-") for name in (*GENERAL_DEFAULTS, "dataset", "joint")}
    for method in METHODS.values():
        for key, param, _ in method_fields(method):
            flags[f"{method.name}.{key}"] = "--" + param.replace("_", "-")
    return flags


#: The defaults of the built-in methods' flags too (read once; `defaults()` reads the
#: registry now).
DEFAULTS: dict[str, Any] = defaults()
#: Spec field → flag, for the built-in methods (`flag_of_field()` reads the registry now).
FLAG_OF_FIELD: dict[str, str] = flag_of_field()


def spec_from_flags(
    *,
    spec_file: Path | None = None,
    extra: dict[str, Any] | None = None,
    dataset: str | None = None,
    reset_optimizer: bool = False,
    augment: bool = False,
    joint: bool = False,
    **values: Any,
) -> ExperimentSpec:
    """Build and validate a spec from the original flags (by parameter name: `batch_size`,
    `ewc`, `ewc_lambda`, ...; a flag not given takes its default).

    With `spec_file`, the file is the base and only flags whose value differs from the
    default override it. Raises `typer.BadParameter` naming the flag on invalid input.
    """
    flags = {name: values.get(name, default) for name, default in GENERAL_DEFAULTS.items()}
    data: dict[str, Any] = {}
    if spec_file is not None:
        try:
            data = json.loads(spec_file.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise typer.BadParameter(f"cannot read {spec_file}: {exc}", param_hint="--spec")
        if not isinstance(data, dict):
            raise typer.BadParameter(f"{spec_file} must hold a JSON object", param_hint="--spec")
        flags = {k: v for k, v in flags.items() if v != GENERAL_DEFAULTS[k]}
    data.update(flags)
    if dataset is not None:
        data["dataset"] = dataset
    if reset_optimizer:
        data["reset_optimizer"] = True
    if augment:
        data["augment"] = True
    if joint:
        data["joint"] = True
    for method in METHODS.values():
        if values.get(method.name):
            data[method.name] = {
                key: value
                for key, param, info in method_fields(method)
                for value in [values.get(param, info.default)]
                if value is not None
            }
    data.update(extra or {})
    try:
        return ExperimentSpec.model_validate(data)
    except ValidationError as exc:
        raise typer.BadParameter("; ".join(describe_flag_errors(exc))) from None


def describe_flag_errors(exc: ValidationError) -> list[str]:
    """One line per problem, naming the command-line flag (or spec field) and what is allowed."""
    flags = flag_of_field()
    return [f"{flags.get(field, field)}: {msg}" for field, msg in validation_problems(exc)]


def _general_flags(
    batch_size: BatchSize = DEFAULTS["batch_size"],
    epochs: Epochs = DEFAULTS["epochs"],
    learning_rate: LearningRate = DEFAULTS["learning_rate"],
    model: Model = DEFAULTS["model"],
    dataset: Dataset = None,
    dataset_update: DatasetUpdate = DEFAULTS["dataset_update"],
    splits: Splits = DEFAULTS["splits"],
    heads: Heads = DEFAULTS["heads"],
    hidden: Hidden = None,
    seed: Seed = DEFAULTS["seed"],
    fisher: Fisher = DEFAULTS["fisher"],
    reset_optimizer: ResetOptimizer = False,
    augment: Augment = False,
    joint: Joint = False,
) -> None:
    """The signature that declares the spec's own flags once (never called)."""


_KEYWORD = inspect.Parameter.KEYWORD_ONLY
_GENERAL = [
    p.replace(kind=_KEYWORD)
    for p in inspect.signature(_general_flags, eval_str=True).parameters.values()
]


def method_parameters(method: type[Method]) -> list[inspect.Parameter]:
    """`--<method>` and one `--<method>-<field>` per config field, as Typer parameters."""
    switch = Annotated[bool, typer.Option(f"--{method.name}", help=method.Config.flag_help)]
    params = [inspect.Parameter(method.name, _KEYWORD, annotation=switch, default=False)]
    for _, param, info in method_fields(method):
        kind = field_type(info)
        option = typer.Option(
            "--" + param.replace("_", "-"),
            help=info.description or "",
            show_default=info.default is not None,
        )
        annotation = Annotated[kind | None if info.default is None else kind, option]
        params.append(inspect.Parameter(param, _KEYWORD, annotation=annotation, default=info.default))
    return params


def flag_parameters() -> list[inspect.Parameter]:
    """Every flag as a keyword-only parameter for Typer, the methods' read from the registry
    now: the data and training flags, each method's, then seed, fisher and the switches."""
    methods = [p for method in METHODS.values() for p in method_parameters(method)]
    first = [p.name for p in _GENERAL].index("seed")
    return [*_GENERAL[:first], *methods, *_GENERAL[first:]]


@dataclass(frozen=True)
class SpecFlags:
    """The original flags as given on a command line; `to_spec()` validates them."""

    values: dict[str, Any]

    def to_spec(
        self, *, spec_file: Path | None = None, extra: dict[str, Any] | None = None
    ) -> ExperimentSpec:
        """The validated spec (see `spec_from_flags`); raises typer.BadParameter."""
        return spec_from_flags(**self.values, spec_file=spec_file, extra=extra)


class _WithSpecFlags:
    """A command with every spec flag: what Typer sees (its signature) is computed when the
    command line is parsed, so it holds the methods registered by then."""

    def __init__(self, command: Callable[..., Any]):
        self.command = command
        self.__name__ = command.__name__
        self.__qualname__ = command.__qualname__
        self.__module__ = command.__module__
        self.__doc__ = command.__doc__
        own = inspect.signature(command, eval_str=True).parameters
        self.own = [p.replace(kind=_KEYWORD) for n, p in own.items() if n != "flags"]

    @property
    def __signature__(self) -> inspect.Signature:
        return inspect.Signature([*flag_parameters(), *self.own])

    @property
    def __annotations__(self) -> dict[str, Any]:  # type: ignore[override]
        return {p.name: p.annotation for p in self.__signature__.parameters.values()}

    def __call__(self, **kwargs: Any) -> Any:
        values = {p.name: kwargs.pop(p.name) for p in flag_parameters()}
        return self.command(flags=SpecFlags(values), **kwargs)


def with_spec_flags(command: Callable[..., Any]) -> Callable[..., Any]:
    """Give a Typer command every spec flag.

    The command declares its own options plus a `flags: SpecFlags` parameter; Typer sees
    the spec's flags (`--batch-size` ... `--augment`, each registered method's) and the
    command's own options, and the command gets the flags as one `SpecFlags`.
    """
    return _WithSpecFlags(command)
