"""The dashboard's "new experiment" and "new sweep" forms: HTML form fields (the original
flags) → a validated `ExperimentSpec`, or a message per form field.

Field names follow the original flags with dashes as underscores (`ewc_lambda` for
`--ewc-lambda`). Each registered method's part of the form (a checkbox named after it, one
input per config field, with the field's default and description as help) is generated
from its config model, like its flags. Errors are keyed by form field so the page shows
each next to its input.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from pydantic import ValidationError

from api import parsing
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
from continual_core.user_datasets import USER_PREFIX, as_input_shape
from store.sweeps import GridError, parse_grid_entries

#: The spec's own fields on the form, each with the spec's default.
_GENERAL = ("model", "dataset", "dataset_update", "splits", "heads", "hidden", "epochs",
            "batch_size", "learning_rate", "fisher", "seed", "priority", "device", "name")  # fmt: skip
#: The spec's own checkboxes (a browser sends them only when ticked).
_SWITCHES = ("joint",)
#: Fields a post may leave out (added after the form's first version): absent = the default.
_OPTIONAL = ("heads", "hidden")
#: Where the form starts elsewhere than the spec: a small offline dataset and task stream,
#: so that "Submit" on a fresh form runs anywhere in seconds.
_FORM_START = {"dataset": "mnist-5k", "dataset_update": "permute", "splits": "3", "epochs": "6"}


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def method_inputs(method: type[Method]) -> list[dict[str, Any]]:
    """The form inputs of a method's config fields: name (`ewc_lambda`), label, help,
    default (as text, "" for none), type (int, float, str, bool) and widget (checkbox,
    number, text)."""
    short = method.Config.__name__.removesuffix("Config") or method.name
    inputs = []
    for name, info in method.Config.model_fields.items():
        key = info.alias or name
        annotation = info.annotation
        kind = next((t for t in (bool, int, float) if _is(annotation, t)), str)
        inputs.append({
            "name": f"{method.name}_{key}", "path": f"{method.name}.{key}", "key": key,
            "label": f"{short} {info.title or key}", "help": info.description or "",
            "default": _text(info.default), "type": kind,
            "widget": {bool: "checkbox", int: "number"}.get(kind, "text"),
        })  # fmt: skip
    return inputs


def _is(annotation: Any, kind: type) -> bool:
    """Whether a field's annotation is `kind` or `kind | None` (bool is not an int here)."""
    args = getattr(annotation, "__args__", None)
    options = [a for a in args if a is not type(None)] if args else [annotation]
    return any(a is kind or getattr(a, "__origin__", None) is kind for a in options)


def method_sections() -> list[dict[str, Any]]:
    """One part of the form per registered method: its checkbox and its inputs."""
    return [
        {"name": name, "label": method.Config.label or name, "inputs": method_inputs(method)}
        for name, method in METHODS.items()
    ]


def form_defaults() -> dict[str, str]:
    """What an empty form shows, by field: the spec's defaults (except `_FORM_START`) and
    every method field's default."""
    spec_fields = ExperimentSpec.model_fields
    values = {name: _text(spec_fields[name].default) for name in _GENERAL}
    values.update(_FORM_START)
    values["tags"] = ""
    for method in METHODS.values():
        values.update({i["name"]: i["default"] for i in method_inputs(method) if i["type"] is not bool})
    return values


def checkboxes() -> tuple[str, ...]:
    """The checkboxes (a browser sends them only when ticked): one per method, and each
    bool field of a method."""
    boxes = list(_SWITCHES)
    for method in METHODS.values():
        boxes.append(method.name)
        boxes += [i["name"] for i in method_inputs(method) if i["type"] is bool]
    return tuple(boxes)


#: The form's default values for the built-in methods (`form_defaults()` reads the registry now).
FORM_DEFAULTS: dict[str, str] = form_defaults()

CHOICES: dict[str, Any] = {
    "model": MODELS,
    "dataset": DATASETS,
    "dataset_update": DATASET_UPDATES,
    "fisher": FISHER_ESTIMATORS,
    "heads": HEADS,
    "device": ("any", "cpu", "gpu"),
    # Not a select: the methods' part of the form (new.html loops over it).
    "methods": method_sections(),
}


class Upload(Protocol):
    """What the dataset select reads of an uploaded dataset (`store.records.Dataset`)."""

    name: str
    input_shape: list[Any]
    num_classes: int
    train_examples: int


def dataset_options(uploads: Iterable[Upload]) -> dict[str, list[tuple[str, str]]]:
    """The dataset select's (value, label) options in two groups: `builtin` (the model's
    default, then every built-in dataset) and `uploaded` (every upload as `user:<name>`,
    labelled with its shape as height × width × channels, its classes and examples)."""
    builtin = [("", "default for the model"), *((name, name) for name in DATASETS)]
    uploaded = []
    for row in uploads:
        shape = "×".join(str(n) for n in as_input_shape(tuple(row.input_shape)))
        value = f"{USER_PREFIX}{row.name}"
        label = f"{value} ({shape}, {row.num_classes} classes, {row.train_examples} train)"
        uploaded.append((value, label))
    return {"builtin": builtin, "uploaded": uploaded}


def new_fields() -> tuple[str, ...]:
    """What the new-experiment page posts: every field always, the checkboxes when ticked
    (for the methods registered now)."""
    return (*form_defaults(), *checkboxes())


#: The checkboxes of the new-experiment form (a browser sends them only when ticked).
CHECKBOXES = checkboxes()
#: What the new-experiment page posts (the built-in methods'; `new_fields()` reads the
#: registry now).
NEW_FIELDS = new_fields()
NEW_REQUIRED = tuple(f for f in FORM_DEFAULTS if f not in _OPTIONAL)
#: What the new-sweep form posts (all three always).
SWEEP_FIELDS = ("name", "base", "grid")
#: Deepest nesting of the sweep form's base spec (a spec is two levels deep).
MAX_BASE_DEPTH = 8

_INTS = ("splits", "epochs", "batch_size", "seed", "priority")
#: Numbers the form must not leave empty (an empty one would silently become a default).
_REQUIRED_NUMBERS = ("splits", "epochs", "batch_size", "learning_rate", "seed", "priority")


def _checked(form: Mapping[str, Any], name: str) -> bool:
    return str(form.get(name, "")).lower() in ("on", "true", "1", "yes")


def _number(text: str, kind: type) -> tuple[Any, str | None]:
    """(value, None) or (None, the message for the field)."""
    try:
        return kind(text), None
    except ValueError:
        return None, f"{text!r} is not {'a whole number' if kind is int else 'a number'}"


def spec_from_form(form: Mapping[str, Any]) -> tuple[ExperimentSpec | None, dict[str, str]]:
    """(spec, {}) for a valid form, or (None, {form field: message}) for an invalid one."""
    values = {k: str(form.get(k, "")).strip() for k in form_defaults()}
    errors: dict[str, str] = {}
    data: dict[str, Any] = {
        name: values[name] for name in ("model", "dataset_update", "fisher", "device")
    }
    for name in _OPTIONAL:  # "400,400" for hidden: the spec reads the widths
        if values[name]:
            data[name] = values[name]
    data.update({name: True for name in _SWITCHES if _checked(form, name)})
    for name in _REQUIRED_NUMBERS:
        if values[name] == "":
            errors[name] = "required"
            continue
        data[name], problem = _number(values[name], int if name in _INTS else float)
        if problem:
            errors[name] = problem
    if values["dataset"]:
        data["dataset"] = values["dataset"]
    for name, method in METHODS.items():
        section: dict[str, Any] = {}
        for field in method_inputs(method):
            if field["type"] is bool:
                section[field["key"]] = _checked(form, field["name"])
            elif (text := values[field["name"]]) == "":
                continue  # empty: the field's default
            elif field["type"] is str:
                section[field["key"]] = text
            else:
                section[field["key"]], problem = _number(text, field["type"])
                if problem:
                    errors[field["name"]] = problem
        if _checked(form, name):
            data[name] = section
    if errors:
        return None, errors
    if values["name"]:
        data["name"] = values["name"]
    tags = [t.strip() for t in values["tags"].split(",") if t.strip()]
    if tags:
        data["tags"] = tags
    try:
        return ExperimentSpec.model_validate(data), {}
    except ValidationError as exc:
        return None, problems_by_field(validation_problems(exc))


def field_of_path() -> dict[str, str]:
    """Spec path (as `validation_problems` names it) → the form field that sets it."""
    fields = {"tags": "tags"}
    for method in METHODS.values():
        fields.update({i["path"]: i["name"] for i in method_inputs(method)})
    return fields


def problems_by_field(problems: list[tuple[str, str]]) -> dict[str, str]:
    """{form field: message} for (spec path, message) problems; unknown paths go to "form"."""
    errors: dict[str, str] = {}
    fields, known = field_of_path(), {*form_defaults(), *_SWITCHES}
    for path, message in problems:
        field = fields.get(path, path.split(".")[0])
        if path.startswith("tags"):
            field = "tags"
        if field not in known:
            field = "form"
        errors[field] = f"{errors[field]}; {message}" if field in errors else message
    return errors


def form_values(form: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The values to show in the form: the defaults, overlaid with what was submitted."""
    values: dict[str, Any] = form_defaults()
    if form is None:
        values.update({k: False for k in checkboxes()})  # as the flags: all off
        return values
    values.update({k: str(form.get(k, "")) for k in values})
    values.update({k: _checked(form, k) for k in checkboxes()})
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
