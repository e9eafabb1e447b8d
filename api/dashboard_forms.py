"""The dashboard's "new experiment" and "new sweep" forms: HTML form fields (the original
flags) → a validated `ExperimentSpec`, or a message per form field.

Field names follow the original flags with dashes as underscores (`ewc_lambda` for
`--ewc-lambda`). Errors are keyed by form field so the page shows each next to its input.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from api import parsing
from continual_core.spec import (
    DATASET_UPDATES,
    DATASETS,
    FISHER_ESTIMATORS,
    MODELS,
    ExperimentSpec,
    validation_problems,
)
from store.sweeps import GridError, parse_grid_entries

#: Spec path (as `validation_problems` names it) → the form field that sets it.
FIELD_OF_PATH = {
    "ewc.lambda": "ewc_lambda",
    "ewc.samples": "ewc_samples",
    "fim.threshold": "fim_threshold",
    "fim.samples": "fim_samples",
    "incdet.threshold": "incdet_threshold",
    "tags": "tags",
}

#: The form's default values (what an empty form shows): the spec's defaults, except a
#: small offline dataset, so that "Submit" on a fresh form runs anywhere in seconds.
FORM_DEFAULTS: dict[str, str] = {
    "model": "mlp",
    "dataset": "mnist-5k",
    "dataset_update": "permute",
    "splits": "3",
    "epochs": "6",
    "batch_size": "256",
    "learning_rate": "0.001",
    "ewc_lambda": "",
    "ewc_samples": "100",
    "fim_threshold": "",
    "fim_samples": "100",
    "incdet_threshold": "1e-06",
    "fisher": "empirical",
    "seed": "0",
    "priority": "0",
    "device": "any",
    "name": "",
    "tags": "",
}

CHOICES = {
    "model": MODELS,
    "dataset": DATASETS,
    "dataset_update": DATASET_UPDATES,
    "fisher": FISHER_ESTIMATORS,
    "device": ("any", "cpu", "gpu"),
}

#: The checkboxes of the new-experiment form (a browser sends them only when ticked).
CHECKBOXES = ("ewc", "fim", "incdet")
#: What the new-experiment page posts: every field always, the checkboxes when ticked.
NEW_FIELDS = (*FORM_DEFAULTS, *CHECKBOXES)
NEW_REQUIRED = tuple(FORM_DEFAULTS)
#: What the new-sweep form posts (all three always).
SWEEP_FIELDS = ("name", "base", "grid")
#: Deepest nesting of the sweep form's base spec (a spec is two levels deep).
MAX_BASE_DEPTH = 8

_INTS = ("splits", "epochs", "batch_size", "ewc_samples", "fim_samples", "seed", "priority")
#: Numbers the form must not leave empty (an empty one would silently become a default).
_REQUIRED_NUMBERS = ("splits", "epochs", "batch_size", "learning_rate", "seed", "priority")
_FLOATS = ("learning_rate", "ewc_lambda", "fim_threshold", "incdet_threshold")


def _checked(form: Mapping[str, Any], name: str) -> bool:
    return str(form.get(name, "")).lower() in ("on", "true", "1", "yes")


def spec_from_form(form: Mapping[str, Any]) -> tuple[ExperimentSpec | None, dict[str, str]]:
    """(spec, {}) for a valid form, or (None, {form field: message}) for an invalid one."""
    values = {k: str(form.get(k, "")).strip() for k in FORM_DEFAULTS}
    errors: dict[str, str] = {}
    numbers: dict[str, Any] = {}
    for name in _REQUIRED_NUMBERS:
        if values[name] == "":
            errors[name] = "required"
    for name in _INTS:
        if values[name] == "" or name in errors:
            continue
        try:
            numbers[name] = int(values[name])
        except ValueError:
            errors[name] = f"{values[name]!r} is not a whole number"
    for name in _FLOATS:
        if values[name] == "" or name in errors:
            continue
        try:
            numbers[name] = float(values[name])
        except ValueError:
            errors[name] = f"{values[name]!r} is not a number"
    if errors:
        return None, errors

    data: dict[str, Any] = {
        name: values[name] for name in ("model", "dataset_update", "fisher", "device")
    }
    if values["dataset"]:
        data["dataset"] = values["dataset"]
    for name in ("splits", "epochs", "batch_size", "learning_rate", "seed", "priority"):
        if name in numbers:
            data[name] = numbers[name]
    if _checked(form, "ewc"):
        data["ewc"] = {"samples": numbers.get("ewc_samples", 100)}
        if "ewc_lambda" in numbers:
            data["ewc"]["lambda"] = numbers["ewc_lambda"]
    if _checked(form, "fim"):
        data["fim"] = {"samples": numbers.get("fim_samples", 100)}
        if "fim_threshold" in numbers:
            data["fim"]["threshold"] = numbers["fim_threshold"]
    if _checked(form, "incdet"):
        data["incdet"] = {"threshold": numbers.get("incdet_threshold", 1e-6)}
    if values["name"]:
        data["name"] = values["name"]
    tags = [t.strip() for t in values["tags"].split(",") if t.strip()]
    if tags:
        data["tags"] = tags
    try:
        return ExperimentSpec.model_validate(data), {}
    except ValidationError as exc:
        return None, problems_by_field(validation_problems(exc))


def problems_by_field(problems: list[tuple[str, str]]) -> dict[str, str]:
    """{form field: message} for (spec path, message) problems; unknown paths go to "form"."""
    errors: dict[str, str] = {}
    for path, message in problems:
        field = FIELD_OF_PATH.get(path, path.split(".")[0])
        if path.startswith("tags"):
            field = "tags"
        if field not in FORM_DEFAULTS:
            field = "form"
        errors[field] = f"{errors[field]}; {message}" if field in errors else message
    return errors


def form_values(form: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The values to show in the form: the defaults, overlaid with what was submitted."""
    values: dict[str, Any] = dict(FORM_DEFAULTS)
    if form is None:
        values.update(ewc=False, fim=False, incdet=False)  # as the flags: all off
        return values
    values.update({k: str(form.get(k, "")) for k in FORM_DEFAULTS})
    values.update({k: _checked(form, k) for k in ("ewc", "fim", "incdet")})
    return values


def parse_base_spec(text: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The sweep form's base spec: (spec, {}) or ({}, {"base": message})."""
    if not text.strip():
        return {}, {"base": "required: the base spec as a JSON object ({} for the defaults)"}
    try:  # the one bounded loader: depth, length and storable text, never a RecursionError
        spec = parsing.loads_bounded(text, max_depth=MAX_BASE_DEPTH)
    except parsing.ParseError as exc:
        return {}, {"base": f"not a JSON object: it {exc}"}
    if not isinstance(spec, dict):
        return {}, {"base": "not a JSON object: the base spec must be {...}"}
    return spec, {}


def parse_grid_text(text: str) -> tuple[dict[str, list[Any]], dict[str, str]]:
    """A grid from lines "path=v1,v2,..." (values parsed as JSON where they can be; blank
    lines and # comments skipped). Returns (grid, {}) or ({}, {"grid": message})."""
    lines = [
        line for line in text.splitlines() if line.strip() and not line.strip().startswith("#")
    ]
    try:
        return parse_grid_entries(lines), {}
    except GridError as exc:
        return {}, {"grid": str(exc)}
