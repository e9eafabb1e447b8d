"""Datasets of one's own: a `.npz` with `x_train, y_train, x_test, y_test` (and optionally
`class_names`), named in a spec as `"dataset": "user:<name>"`.

This module knows files, not the service: `inspect_npz(path)` checks a file (the API runs
it on every upload, the loader again before training) and says in one `NpzProblem` what
is wrong; `load_user_dataset(spec, cache_dir)` reads the file the worker placed at
`user_dataset_file(cache_dir, checksum)` (the worker downloads it from the artifact store
and caches it by checksum; the core never reads the environment or a store).

A spec naming `user:<name>` is *resolved* by the server at submission: `user_dataset`
(`UserDatasetInfo`: the file's sha256, its input shape and class count) is filled in from
the upload, so the spec's `input_shape` / `num_classes`, the model's shape checks and the
task streams work as for a built-in dataset, and the job trains on exactly that file.
An unresolved spec validates (the shape checks wait for the resolution) but has no shape.

Inputs: any numeric dtype (not bool, not complex), one example of shape (D,), (H, W) or
(H, W, C), taken as (1, D, 1), (H, W, 1) or (H, W, C). uint8 inputs are scaled to [0, 1]
(÷ 255), every other dtype is used as it is (as float32). Labels: integers in
[0, num_classes), shape (N,) or (N, 1); num_classes is len(class_names) when given, else
the largest label + 1, and at least 2. Files are read with `allow_pickle=False`: object
arrays (pickles) are refused.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import Field

from continual_core.fields import Strict

#: A spec's `dataset` names an uploaded dataset as `user:<name>`.
USER_PREFIX = "user:"
#: An uploaded dataset's name: 1-64 letters, digits, `.`, `_`, `-`, starting with a letter or digit.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
NAME_RULE = "1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
#: The arrays a dataset file must hold, and the one it may hold.
REQUIRED = ("x_train", "y_train", "x_test", "y_test")
OPTIONAL = ("class_names",)
#: Most classes a dataset may have.
MAX_CLASSES = 10_000

_NAME = re.compile(NAME_PATTERN)
_SHA256 = r"^[0-9a-f]{64}$"


class NpzProblem(ValueError):
    """What is wrong with a dataset file, in one sentence a person can act on."""


class UserDatasetInfo(Strict):
    """What a spec needs of an uploaded dataset; the server fills it in at submission."""

    checksum: Annotated[str, Field(pattern=_SHA256, description="sha256 of the .npz file")]
    input_shape: Annotated[list[Annotated[int, Field(ge=1)]], Field(min_length=3, max_length=3)]
    num_classes: Annotated[int, Field(ge=2, le=MAX_CLASSES)]


@dataclass(frozen=True)
class NpzSummary:
    """What `inspect_npz` found: one example's shape in the file and as (H, W, C), the
    classes, the example counts and the class names (None when the file has none)."""

    example_shape: tuple[int, ...]
    input_shape: tuple[int, int, int]
    num_classes: int
    train_examples: int
    test_examples: int
    class_names: list[str] | None


def is_user(dataset: object) -> bool:
    """Whether a spec's `dataset` names an uploaded dataset (`user:<name>`)."""
    return isinstance(dataset, str) and dataset.startswith(USER_PREFIX)


def user_name(dataset: str) -> str:
    """`<name>` of `user:<name>`."""
    return dataset.removeprefix(USER_PREFIX)


def name_problem(name: str) -> str | None:
    """Why `name` cannot name a dataset, or None."""
    if not isinstance(name, str) or not _NAME.match(name):
        return f"{str(name)[:80]!r} is not a dataset name; use {NAME_RULE}"
    return None


def user_dataset_file(cache_dir: Path, checksum: str) -> Path:
    """Where the loader reads the uploaded dataset with this sha256: `<cache>/user/<sha>.npz`."""
    if not re.match(_SHA256, checksum or ""):
        raise ValueError(f"not a sha256 hex digest: {checksum!r}")
    return Path(cache_dir) / "user" / f"{checksum}.npz"


def as_input_shape(example: tuple[int, ...]) -> tuple[int, int, int]:
    """One example's shape in the file → (height, width, channels)."""
    if len(example) == 1:
        return (1, example[0], 1)
    if len(example) == 2:
        return (example[0], example[1], 1)
    return (example[0], example[1], example[2])


# Checking a file -----------------------------------------------------------------------


def _open(path: Path, max_uncompressed: int | None) -> Any:
    """`np.load` of a zip whose members are all .npy files (the npz format)."""
    if not zipfile.is_zipfile(path):
        raise NpzProblem("the file is not an .npz archive (numpy.savez / savez_compressed "
                         "write one); it is not even a zip file")  # fmt: skip
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise NpzProblem(f"the file is not a readable .npz archive ({exc})") from None
    total = sum(m.file_size for m in members)
    if max_uncompressed is not None and total > max_uncompressed:
        raise NpzProblem(f"the arrays take {total} bytes uncompressed, above this server's "
                         f"limit of {max_uncompressed} (4 × EWC_MAX_DATASET_MB)")  # fmt: skip
    odd = [m.filename for m in members if not m.filename.endswith(".npy")]
    if odd:
        raise NpzProblem(f"the file is a zip but not an .npz: {odd[0][:80]!r} is not an "
                         "array (.npy); save it with numpy.savez_compressed")  # fmt: skip
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise NpzProblem(f"the file is not a readable .npz archive ({exc})") from None


def _array(npz: Any, key: str) -> np.ndarray:
    try:
        return np.asarray(npz[key])
    except ValueError as exc:  # an object array: allow_pickle=False refuses it
        if "pickle" in str(exc).lower():
            raise NpzProblem(f"{key} is an object array (a pickle); only numeric arrays "
                             "(and strings for class_names) are accepted") from None  # fmt: skip
        raise NpzProblem(f"{key} cannot be read ({exc})") from None
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise NpzProblem(f"{key} cannot be read ({exc}); the file is damaged") from None


def _check_x(key: str, x: np.ndarray) -> None:
    if x.dtype.kind not in "iuf":
        raise NpzProblem(f"{key} has dtype {x.dtype}; inputs must be numbers (an integer or "
                         "floating-point dtype such as uint8 or float32)")  # fmt: skip
    if x.ndim < 2 or x.ndim > 4:
        raise NpzProblem(f"{key} has shape {x.shape}; it must be (examples, features), "
                         "(examples, height, width) or (examples, height, width, channels)")  # fmt: skip
    if x.size == 0:
        raise NpzProblem(f"{key} is empty (shape {x.shape}); each split needs at least one "
                         "example of at least one value")  # fmt: skip
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).sum())
        raise NpzProblem(f"{key} holds {bad} NaN or infinite values; inputs must be finite")


def _check_y(key: str, y: np.ndarray, examples: int, x_key: str) -> np.ndarray:
    if y.dtype.kind not in "iu":
        raise NpzProblem(f"{key} has dtype {y.dtype}; labels must be integers (class "
                         "indices 0, 1, ...), such as int64 or uint8")  # fmt: skip
    if y.ndim == 2 and y.shape[1] == 1:
        y = y.reshape(-1)
    if y.ndim != 1:
        raise NpzProblem(f"{key} has shape {y.shape}; labels must be one class index per "
                         "example, shape (examples,)")  # fmt: skip
    if len(y) != examples:
        raise NpzProblem(f"{key} has {len(y)} labels but {x_key} has {examples} examples; "
                         "they must have one label per example")  # fmt: skip
    if len(y) and int(y.min()) < 0:
        raise NpzProblem(f"{key} holds the negative label {int(y.min())}; labels are class "
                         "indices 0, 1, ..., num_classes - 1")  # fmt: skip
    return y


def inspect_npz(path: Path, max_uncompressed: int | None = None) -> NpzSummary:
    """Check a dataset file; raises `NpzProblem` naming the first thing wrong."""
    with _open(Path(path), max_uncompressed) as npz:
        names = list(npz.files)
        missing = [k for k in REQUIRED if k not in names]
        if missing:
            has = ", ".join(names[:10]) or "no arrays"
            raise NpzProblem(f"missing array {missing[0]!r} (the file has: {has}); a dataset "
                             f"holds {', '.join(REQUIRED)} and optionally class_names")  # fmt: skip
        unknown = [k for k in names if k not in (*REQUIRED, *OPTIONAL)]
        if unknown:
            raise NpzProblem(f"unexpected array {unknown[0][:60]!r}; a dataset holds only "
                             f"{', '.join(REQUIRED)} and optionally class_names")  # fmt: skip
        arrays = {k: _array(npz, k) for k in names}
    x_train, x_test = arrays["x_train"], arrays["x_test"]
    for key in ("x_train", "x_test"):
        _check_x(key, arrays[key])
    if x_train.shape[1:] != x_test.shape[1:]:
        raise NpzProblem(f"x_train examples have shape {x_train.shape[1:]} but x_test "
                         f"examples have {x_test.shape[1:]}; both splits need one shape")  # fmt: skip
    y_train = _check_y("y_train", arrays["y_train"], len(x_train), "x_train")
    y_test = _check_y("y_test", arrays["y_test"], len(x_test), "x_test")
    top = max(int(y_train.max()), int(y_test.max()))
    names_array = arrays.get("class_names")
    class_names = None
    if names_array is not None:
        if names_array.dtype.kind != "U" or names_array.ndim != 1:
            raise NpzProblem(f"class_names has dtype {names_array.dtype} and shape "
                             f"{names_array.shape}; it must be a 1-D array of strings")  # fmt: skip
        class_names = [str(n) for n in names_array]
        if top >= len(class_names):
            raise NpzProblem(f"the labels go up to {top} but class_names names "
                             f"{len(class_names)} classes; labels must be below "
                             f"len(class_names) = {len(class_names)}")  # fmt: skip
    classes = len(class_names) if class_names is not None else top + 1
    if classes < 2:
        raise NpzProblem(f"the dataset has {classes} class; continual learning needs at least "
                         "2 (labels 0 and 1)")  # fmt: skip
    if classes > MAX_CLASSES:
        raise NpzProblem(f"the dataset has {classes} classes (largest label {top}); at most "
                         f"{MAX_CLASSES} are allowed")  # fmt: skip
    example = tuple(int(d) for d in x_train.shape[1:])
    return NpzSummary(example, as_input_shape(example), classes, len(x_train), len(x_test),
                      class_names)  # fmt: skip


# Loading it for training ---------------------------------------------------------------


def load_user_dataset(spec: Any, cache_dir: Path) -> tuple[tuple[np.ndarray, np.ndarray],
                                                           tuple[np.ndarray, np.ndarray]]:
    """((x_train, y_train), (x_test, y_test)) of the resolved `user:<name>` of `spec`, from
    `user_dataset_file(cache_dir, checksum)`; inputs float32 in the spec's (H, W, C)."""
    info = spec.user_dataset
    if info is None:
        raise ValueError(f"dataset {spec.dataset}: not resolved (the server fills in "
                         "user_dataset at submission; uploaded datasets train on the "
                         "service, `ewc submit`, not `ewc run`)")  # fmt: skip
    path = user_dataset_file(cache_dir, info.checksum)
    if not path.is_file():
        raise FileNotFoundError(f"dataset {spec.dataset}: {path} is missing (the worker "
                                "downloads it before training)")  # fmt: skip
    summary = inspect_npz(path)
    if list(summary.input_shape) != list(info.input_shape) or summary.num_classes != info.num_classes:
        raise NpzProblem(f"dataset {spec.dataset}: the file at {path} is not the one the spec "
                         "was resolved for (shape or classes differ)")  # fmt: skip
    with np.load(path, allow_pickle=False) as npz:
        parts = [np.asarray(npz[k]) for k in REQUIRED]
    shape = tuple(info.input_shape)
    out = []
    for x, y in ((parts[0], parts[1]), (parts[2], parts[3])):
        x = x.astype(np.float32) / np.float32(255.0) if x.dtype == np.uint8 else x.astype(np.float32)
        out.append((np.ascontiguousarray(x.reshape((len(x), *shape))), y.reshape(-1).astype(np.int32)))
    return out[0], out[1]


# The spec's side ---------------------------------------------------------------------

#: The JSON Schema pattern of `user:<name>`.
USER_DATASET_PATTERN = "^user:" + NAME_PATTERN.removeprefix("^")
#: Where an unresolved `user:<name>` stands in the spec's shape checks: passes them all
#: (they run again, on the real shape, when the server resolves it).
_UNRESOLVED = ((1 << 20, 1 << 20, 1), MAX_CLASSES)


def dataset_choice(value: Any, handler: Any) -> Any:
    """The spec's `dataset` validator: `user:<name>` with a valid name, else a built-in."""
    if is_user(value):
        problem = name_problem(user_name(value))
        if problem:
            raise ValueError(f"dataset: {problem} after {USER_PREFIX!r}")
        return value
    return handler(value)


def dataset_schema(builtin: tuple[str, ...]) -> dict[str, Any]:
    """JSON Schema of the spec's `dataset`: a built-in name or `user:<name>`."""
    return {"anyOf": [{"enum": list(builtin), "type": "string"},
                      {"type": "string", "pattern": USER_DATASET_PATTERN}]}  # fmt: skip


def resolved(spec: Any) -> UserDatasetInfo:
    """The `user_dataset` of a spec naming `user:<name>`; ValueError while unresolved."""
    if spec.user_dataset is None:
        raise ValueError(f"dataset {spec.dataset} is not resolved yet (the server fills in "
                         "user_dataset from the upload at submission)")  # fmt: skip
    return spec.user_dataset


def checked_shape(spec: Any) -> tuple[tuple[int, int, int], int]:
    """(input shape, classes) for the spec's own checks. `user_dataset` is the server's to
    fill in: without `user:<name>` it is dropped (a re-run of an upload's run on `digits`
    keeps none). An unresolved `user:<name>` passes the shape checks (see `_UNRESOLVED`)."""
    if spec.user_dataset is not None and not is_user(spec.dataset):
        spec.user_dataset = None
    if is_user(spec.dataset) and spec.user_dataset is None:
        return _UNRESOLVED
    return spec.input_shape, spec.num_classes
