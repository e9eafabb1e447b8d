"""Sweeps: a grid of experiments over one base spec, and their statistics.

- `expand_grid` turns a base spec (a plain dict) and a grid of dotted paths
  (`{"ewc.lambda": [1, 10, 100], "seed": [0, 1, 2]}`) into one spec dict per grid point
  (the Cartesian product, in the grid's key order). It does not validate the specs: the
  caller (the API) runs every point through `ExperimentSpec` before creating anything.
- `point_statistics` groups a sweep's experiments by their non-seed grid values and gives,
  per group, mean ± std over seeds of average accuracy, BWT and forgetting, counts by status,
  and marks the best point: the highest mean average accuracy, only when it beats the
  runner-up's by more than the noise (Welch's t-test, `store.sweep_best`).
- `create_sweep`, `get_sweep`, `list_sweeps`, `sweep_experiments`: the queries.

Functions here flush but never commit (the caller's unit of work does). Accuracies are
fractions in [0, 1].
"""

from __future__ import annotations

import copy
import itertools
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from store.errors import InvalidInput, NotFound
from store.models import Experiment, JobStatus, Sweep
from store.sweep_best import choose_best
from store.vocabulary import REPLICATE_KEYS, SWEEP_METRICS

#: The largest number of experiments one sweep may create.
MAX_GRID_POINTS = 500


class GridError(InvalidInput):
    """A grid is malformed: names the path (and value) and says what is allowed."""

    def __init__(self, path: str, message: str):
        super().__init__(f"grid {path}: {message}")
        self.path = path
        self.field = f"grid.{path}" if path else "grid"


class SweepNotFound(NotFound):
    def __init__(self, sweep_id: int):
        super().__init__(f"sweep {sweep_id} does not exist; see GET /v1/sweeps")
        self.sweep_id = sweep_id


# Grid expansion ---------------------------------------------------------------------------


GRID_EXAMPLE = "ewc.lambda=1,10,100"


def grid_value(text: str) -> Any:
    """One grid value: JSON when it parses (1, 0.5, true, null), else the string itself."""
    text = text.strip()
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # nested too deep for the decoder: not a value
        return text


def parse_grid_entries(entries: Iterable[str]) -> dict[str, list[Any]]:
    """{path: values} from entries "PATH=V1,V2,..." (the CLI's --grid options, the form's
    lines). Raises GridError naming the bad entry."""
    grid: dict[str, list[Any]] = {}
    for entry in entries:
        path, sep, raw = entry.partition("=")
        path = path.strip()
        values = [grid_value(v) for v in raw.split(",") if v.strip()]
        if not sep or not path or not values:
            raise GridError("", f"{entry.strip()!r}: write PATH=V1,V2,... e.g. {GRID_EXAMPLE}")
        if path in grid:
            raise GridError(path, "is given twice")
        grid[path] = values
    if not grid:
        raise GridError("", f"give at least one PATH=V1,V2,... e.g. {GRID_EXAMPLE}")
    return grid


def set_path(spec: dict[str, Any], path: str, value: Any) -> None:
    """Set `spec[a][b]... = value` for the dotted `path` "a.b...", in place.

    Missing or null intermediate objects are created (so `ewc.lambda` turns EWC on).
    Raises `GridError` when an intermediate value is not an object.
    """
    parts = path.split(".")
    node = spec
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            prefix = ".".join(parts[: i + 1])
            raise GridError(path, f"{prefix} is {child!r}, not an object, so it has no fields")
        node = child
    node[parts[-1]] = value


def get_path(spec: Mapping[str, Any], path: str) -> Any:
    """The value at the dotted `path` of `spec`, or None where a part is missing."""
    node: Any = spec
    for part in path.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def check_grid(grid: Any) -> dict[str, list[Any]]:
    """The grid, checked: an object of dotted paths → non-empty lists of JSON scalars.

    Raises `GridError` naming the offending path; the product must not exceed
    `MAX_GRID_POINTS`.
    """
    if not isinstance(grid, Mapping) or not grid:
        raise GridError("", 'must be a non-empty object like {"ewc.lambda": [1, 10, 100]}')
    checked: dict[str, list[Any]] = {}
    for path, values in grid.items():
        if not isinstance(path, str) or not path or any(not p for p in path.split(".")):
            raise GridError(str(path), "keys must be dotted field paths such as ewc.lambda")
        if not isinstance(values, list) or not values:
            raise GridError(path, f"must be a non-empty list of values, got {values!r}")
        for v in values:
            if isinstance(v, list):
                raise GridError(path, f"value {v!r}: each value must be a scalar or an object")
        if len({repr(v) for v in values}) != len(values):
            raise GridError(path, f"repeated values in {values!r}")
        checked[path] = list(values)
    size = math.prod(len(v) for v in checked.values())
    if size > MAX_GRID_POINTS:
        raise GridError(
            ",".join(checked), f"{size} grid points; at most {MAX_GRID_POINTS} per sweep"
        )
    return checked


def expand_grid(
    base: Mapping[str, Any], grid: Mapping[str, Sequence[Any]]
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(params, spec) per grid point: the Cartesian product of the grid over `base`.

    `params` maps each grid path to its value at that point; `spec` is a deep copy of
    `base` with those values set. Order: the grid's key order, last key fastest.
    """
    grid = check_grid(grid)
    keys = list(grid)
    points = []
    for combo in itertools.product(*(grid[k] for k in keys)):
        spec = copy.deepcopy(dict(base))
        params = dict(zip(keys, combo, strict=True))
        for path, value in params.items():
            set_path(spec, path, value)
        points.append((params, spec))
    return points


# Statistics -------------------------------------------------------------------------------


def mean_std(values: Sequence[float]) -> dict[str, float | int | None]:
    """{"mean", "std", "n"}: the sample standard deviation (n − 1), 0 for a single value."""
    n = len(values)
    if n == 0:
        return {"mean": None, "std": None, "n": 0}
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    return {"mean": mean, "std": math.sqrt(var), "n": n}


def point_statistics(
    grid: Mapping[str, Sequence[Any]], experiments: Sequence[Experiment]
) -> list[dict[str, Any]]:
    """Per grid point (the non-seed keys): statistics over its experiments.

    Each row: `params` (the non-seed grid values), `experiment_ids`, `counts` by status,
    `metrics` = {metric: {"mean", "std", "n"}} over the succeeded runs' summaries, and
    `best` (True for the point with the highest mean average accuracy, ties to less
    forgetting, when it beats the runner-up by more than the noise: `best_point` says why
    or why not). A point's values are read back from each experiment's stored spec.
    """
    keys = [k for k in grid if k not in REPLICATE_KEYS]
    groups: dict[str, dict[str, Any]] = {}
    for exp in sorted(experiments, key=lambda e: e.id):
        params = {k: get_path(exp.spec, k) for k in keys}
        key = repr(sorted(params.items(), key=lambda kv: kv[0]))
        group = groups.setdefault(key, {"params": params, "experiments": []})
        group["experiments"].append(exp)
    rows = []
    for group in groups.values():
        exps: list[Experiment] = group["experiments"]
        counts = status_counts(exps)
        done = [e.summary for e in exps if e.status == JobStatus.succeeded and e.summary]
        metrics = {
            m: mean_std([float(s[m]) for s in done if s.get(m) is not None]) for m in SWEEP_METRICS
        }
        rows.append(
            {
                "params": group["params"],
                "experiment_ids": [e.id for e in exps],
                "counts": counts,
                "metrics": metrics,
                "best": False,
            }
        )
    chosen = choose_best(rows)["index"]
    if chosen is not None:
        rows[chosen]["best"] = True
    return rows


def best_point(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """{"index", "reason", "test"} of `point_statistics`' rows (`store.sweep_best`)."""
    return choose_best(rows)


def status_counts(experiments: Sequence[Experiment]) -> dict[str, int]:
    """How many of `experiments` are in each status (every status present, maybe 0)."""
    counts = {s.value: 0 for s in JobStatus}
    for e in experiments:
        counts[JobStatus(e.status).value] += 1
    return counts


# Queries ----------------------------------------------------------------------------------


def create_sweep(
    session: Session,
    *,
    owner_id: int,
    base_spec: dict[str, Any],
    grid: dict[str, list[Any]],
    name: str | None = None,
) -> Sweep:
    """A new sweep row (flushed, so it has an id); its experiments are added by the caller."""
    sweep = Sweep(owner_id=owner_id, name=name, base_spec=base_spec, grid=check_grid(grid))
    session.add(sweep)
    session.flush()
    return sweep


def get_sweep(session: Session, sweep_id: int) -> Sweep:
    """The sweep, or `SweepNotFound`."""
    sweep = session.get(Sweep, sweep_id)
    if sweep is None:
        raise SweepNotFound(sweep_id)
    return sweep


def sweep_experiments(session: Session, sweep_id: int) -> list[Experiment]:
    """The experiments of a sweep, oldest first."""
    stmt = select(Experiment).where(Experiment.sweep_id == sweep_id).order_by(Experiment.id)
    return list(session.scalars(stmt))


def list_sweeps(
    session: Session, *, owner_id: int | None = None, limit: int = 50, before_id: int | None = None
) -> list[tuple[Sweep, dict[str, int]]]:
    """Sweeps newest first, each with its experiments' counts by status.

    `before_id` pages: pass the smallest id of the previous page.
    """
    stmt = select(Sweep).order_by(Sweep.id.desc()).limit(limit)
    if owner_id is not None:
        stmt = stmt.where(Sweep.owner_id == owner_id)
    if before_id is not None:
        stmt = stmt.where(Sweep.id < before_id)
    sweeps = list(session.scalars(stmt))
    counts: dict[int, dict[str, int]] = {s.id: {j.value: 0 for j in JobStatus} for s in sweeps}
    if sweeps:
        rows = session.execute(
            select(Experiment.sweep_id, Experiment.status, func.count(Experiment.id))
            .where(Experiment.sweep_id.in_(list(counts)))
            .group_by(Experiment.sweep_id, Experiment.status)
        )
        for sweep_id, status, n in rows:
            counts[sweep_id][JobStatus(status).value] = n
    return [(s, counts[s.id]) for s in sweeps]
