"""Runs found by what they are (docs/filters.md): the list and the table of many runs that
`GET /v1/experiments`, `GET /v1/experiments/table` and the dashboard's list share.

- `param_paths`: the dotted spec paths `params.<path>` may name, read from
  `continual_core.spec.ExperimentSpec` (aliases, nested models) and the method registry, so
  a typo is refused with "did you mean" instead of matching nothing;
- `search`: one page of `store.run_search.search_experiments` with those paths;
- `table_rows`, `table_csv`: runs as flat rows (`params.*`, `metrics.*`, tags, times).
"""

from __future__ import annotations

import csv
import functools
import io
import json
import types
import typing
from collections.abc import Iterable
from typing import Annotated, Any

from fastapi import Query
from pydantic import BaseModel

from api.services.reports import BOOKKEEPING_FIELDS, flatten
from continual_core.methods import METHODS
from continual_core.spec import ExperimentSpec
from store.experiments import ExperimentPage
from store.models import SUMMARY_METRICS, Experiment, JobStatus
from store.run_filter import MAX_LENGTH
from store.run_search import search_experiments

#: The columns every table row has, in order, before its `params.*` and `metrics.*`.
TABLE_FIELDS: tuple[str, ...] = (
    "id", "name", "owner", "project", "status", "sweep_id", "tags",
    "created_at", "started_at", "finished_at", "duration_s",
)  # fmt: skip
#: Most rows one table page holds (a listing page holds at most 200).
MAX_TABLE_ROWS = 1000

#: The `filter` and `order_by` query parameters of the list and the table.
FilterQuery = Annotated[
    str | None,
    Query(
        description="Conditions joined by `and` (docs/filters.md), e.g. `params.ewc.lambda > 10 "
        "and metrics.average_accuracy >= 0.9 and status = 'succeeded'`. Keys: "
        "params.<dotted spec field>, metrics.<summary key>, status, tag, owner, project, name, "
        "sweep; "
        "operators = != < <= > >= in like. A bad one is a 422 naming the token and where.",
        max_length=MAX_LENGTH,
        examples=["params.ewc.lambda >= 10 and status = 'succeeded'",
                  "tag in ('baseline', 'ewc') and metrics.bwt >= -0.05"],
    ),
]
OrderQuery = Annotated[
    str | None,
    Query(
        description="`<key> [asc|desc]` (any filter key but tag), e.g. "
        "`metrics.average_accuracy desc`; default newest first. Missing values sort last.",
        max_length=MAX_LENGTH,
        examples=["metrics.average_accuracy desc", "params.ewc.lambda"],
    ),
]

#: The `project` and `archived` query parameters of the list and the table.
ProjectQuery = Annotated[
    str | None, Query(max_length=100, description="Only this project's runs (`project = ...`).")
]
ArchivedQuery = Annotated[
    bool, Query(description="Include archived runs (hidden by default; GET by id still works).")
]


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation can hold (`X | None`, `Annotated[X, ...]`)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, typing.Annotated):
        args = typing.get_args(annotation)
        return [m for a in (args[:1] if origin is typing.Annotated else args) for m in _models_in(a)]
    return []


def _paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    found: list[str] = []
    for name, field in model.model_fields.items():
        path = prefix + (field.serialization_alias or field.alias or name)
        found.append(path)
        for nested in _models_in(field.annotation):
            found += _paths(nested, path + ".")
    return found


@functools.lru_cache(maxsize=8)
def _paths_of(methods: tuple[tuple[str, type[BaseModel]], ...]) -> frozenset[str]:
    found = _paths(ExperimentSpec)
    for name, config in methods:
        found += [name, *_paths(config, name + ".")]
    return frozenset(found)


def param_paths() -> frozenset[str]:
    """Every dotted path of the spec: its fields by alias (`ewc.lambda`), nested models'
    fields, and each registered method with its config's fields. Read per call from the
    registry (methods can be registered at run time), cached on its contents."""
    return _paths_of(tuple((name, m.Config) for name, m in METHODS.items()))


def search(
    session, *, filter: str | None = None, order_by: str | None = None,
    status: JobStatus | None = None, tag: str | None = None, owner: str | None = None,
    limit: int = 50, cursor: str | None = None, project: str | None = None,
    archived: bool = False,
) -> ExperimentPage:  # fmt: skip
    """One page of the runs matching `filter`, sorted by `order_by` (docs/filters.md);
    archived runs only with `archived`. Raises FilterError and InvalidCursor (422s naming
    the field)."""
    return search_experiments(
        session, filter=filter, order_by=order_by, status=status, tag=tag, owner=owner,
        limit=limit, cursor=cursor, param_paths=param_paths(), project=project,
        archived=archived,
    )  # fmt: skip


def _time(value) -> str | None:
    return None if value is None else value.isoformat()


def table_row(e: Experiment) -> dict[str, Any]:
    """One run as a flat row: `TABLE_FIELDS`, then `params.<dotted spec path>` (the stored
    spec; name and tags are columns of their own), then `metrics.<summary key>`."""
    duration = None
    if e.started_at is not None and e.finished_at is not None:
        duration = (e.finished_at - e.started_at).total_seconds()
    row: dict[str, Any] = {
        "id": e.id, "name": e.name, "owner": e.owner.name, "project": e.project,
        "status": e.status.value,
        "sweep_id": e.sweep_id, "tags": e.tag_names, "created_at": _time(e.created_at),
        "started_at": _time(e.started_at), "finished_at": _time(e.finished_at),
        "duration_s": duration,
    }  # fmt: skip
    params = flatten(e.spec or {})
    for path in sorted(params):
        if path.split(".")[0] not in BOOKKEEPING_FIELDS:
            row[f"params.{path}"] = params[path]
    for name in SUMMARY_METRICS:
        row[f"metrics.{name}"] = getattr(e, name)
    return row


def table_rows(experiments: Iterable[Experiment]) -> list[dict[str, Any]]:
    """Flat rows (`table_row`) that all have the same columns: a spec path one run lacks
    is null in its row. Columns: `TABLE_FIELDS`, the `params.*` sorted, the `metrics.*`."""
    rows = [table_row(e) for e in experiments]
    params = sorted({k for r in rows for k in r if k.startswith("params.")})
    metrics = [f"metrics.{m}" for m in SUMMARY_METRICS]
    return [{k: r.get(k) for k in (*TABLE_FIELDS, *params, *metrics)} for r in rows]


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return json.dumps(value, separators=(",", ":"))
    return value


def table_csv(rows: list[dict[str, Any]]) -> str:
    """The rows as CSV with a header (the columns of `table_rows`; none for no rows): empty
    cells are nulls, true/false booleans, and lists (tags) or objects JSON text."""
    out = io.StringIO()
    columns = list(rows[0]) if rows else [*TABLE_FIELDS, *(f"metrics.{m}" for m in SUMMARY_METRICS)]
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    return out.getvalue()
