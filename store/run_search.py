"""Runs found by what they are: a parsed filter and sort order (`store.run_filter`) turned
into SQLAlchemy `where` and `order_by` on `Experiment`, and one keyset-paginated listing.

Every value is a bound parameter, and every key was checked by the parser against a fixed
set (spec paths are letters, digits and _ only), so no text of a filter reaches the SQL.
The same expressions run on PostgreSQL and SQLite:

- `metrics.*` are the float columns of the run (indexed); `status`, `name`, `project`,
  `sweep` (its id for a number, its name for text) columns too; `owner`, a sweep's name and
  `tag` go through an `IN (SELECT ...)` on their table. Archived runs are left out unless
  asked for.
- `params.<path>` reads the JSON `spec` at that path, typed: `json_kind` gives the JSON type
  of the value in one word on both backends, and a number is compared only as a number,
  text only as text, so a value of another type, JSON null or a missing path never matches
  (except `= null`, which asks for exactly those).
- `like` is case-insensitive (ASCII) and `\\` escapes `%`, `_` and itself, on both backends.
- Sorting puts missing values last in either direction and breaks ties by id, newest first,
  so a page boundary never splits or repeats runs; sorting by a spec path puts numbers
  (in order) before text (in order) before everything else.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    String,
    and_,
    case,
    func,
    literal,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, joinedload
from sqlalchemy.sql.functions import FunctionElement

from store.errors import InvalidCursor
from store.experiments import ExperimentPage, decode_cursor, encode_cursor
from store.models import Experiment, ExperimentTag, JobStatus, Sweep, User
from store.run_filter import Comparison, Filter, OrderBy, equals, parse_filter, parse_order

_CURSOR_PREFIX = "s:"


class _JsonKind(FunctionElement[str]):
    """The JSON type of the value at a path of a JSON column, one word on every backend:
    number, string, true, false, null, array or object; SQL NULL where the path is missing.
    Arguments: the column at the path (JSON), the same as text, the column, the SQLite path."""

    type = String()
    inherit_cache = True
    name = "json_kind"


@compiles(_JsonKind, "postgresql")
def _json_kind_postgresql(element, compiler, **kw):
    at, at_text, _column, _path = list(element.clauses)
    typeof = func.json_typeof(at)
    return compiler.process(case((typeof == "boolean", at_text), else_=typeof), **kw)


@compiles(_JsonKind, "sqlite")
def _json_kind_sqlite(element, compiler, **kw):
    _at, _at_text, column, path = list(element.clauses)
    kind = func.json_type(column, path)
    named = case(
        (kind.in_(["integer", "real"]), "number"), (kind == "text", "string"), else_=kind
    )
    return compiler.process(named, **kw)


def json_kind(column, path: Sequence[str]) -> ColumnElement[str]:
    """`_JsonKind` of `column` at `path` (segments already checked: letters, digits, _)."""
    at = column[tuple(path)]
    sqlite_path = "$" + "".join(f'."{segment}"' for segment in path)
    return _JsonKind(at, at.as_string(), column, literal(sqlite_path))


def _param_number(path: Sequence[str]) -> ColumnElement[float]:
    kind = json_kind(Experiment.spec, path)
    return case((kind == "number", Experiment.spec[tuple(path)].as_float()))


def _param_text(path: Sequence[str]) -> ColumnElement[str]:
    kind = json_kind(Experiment.spec, path)
    return case((kind == "string", Experiment.spec[tuple(path)].as_string()))


def _like(expr, pattern: str) -> ColumnElement[bool]:
    return func.lower(expr).like(func.lower(literal(pattern)), escape="\\")


def _compare(expr, op: str, value: Any) -> ColumnElement[bool]:
    if op == "like":
        return _like(expr, value)
    return {
        "=": expr.__eq__, "!=": expr.__ne__, "<": expr.__lt__, "<=": expr.__le__,
        ">": expr.__gt__, ">=": expr.__ge__,
    }[op](value)


def _is_null(expr, op: str) -> ColumnElement[bool]:
    return expr.is_(None) if op == "=" else expr.is_not(None)


def _param(path: Sequence[str], op: str, value: Any) -> ColumnElement[bool]:
    kind = json_kind(Experiment.spec, path)
    if value is None:
        missing = or_(kind.is_(None), kind == "null")
        return missing if op == "=" else not_(missing)
    if isinstance(value, bool):
        return kind == ("true" if value == (op == "=") else "false")
    if isinstance(value, float):
        return _compare(_param_number(path), op, value)
    return _compare(_param_text(path), op, value)


def _one(clause: Comparison, op: str, value: Any) -> ColumnElement[bool]:
    """The SQL of `key op value` for one value (an `in` list is an OR of `=`)."""
    kind = clause.key.kind
    if kind == "params":
        return _param(clause.key.path, op, value)
    if kind == "metrics":
        column = getattr(Experiment, clause.key.path[0])
        return _is_null(column, op) if value is None else _compare(column, op, value)
    if kind in ("name", "project"):
        column = Experiment.name if kind == "name" else Experiment.project
        return _is_null(column, op) if value is None else _compare(column, op, value)
    if kind == "status":
        return _compare(Experiment.status, op, JobStatus(value))
    if kind == "owner":
        return Experiment.owner_id.in_(select(User.id).where(_compare(User.name, op, value)))
    if kind == "sweep":
        if value is None:
            return _is_null(Experiment.sweep_id, op)
        if isinstance(value, float):
            return _compare(Experiment.sweep_id, op, int(value))
        return Experiment.sweep_id.in_(select(Sweep.id).where(_compare(Sweep.name, op, value)))
    if kind == "tag":
        if value is None:  # = null: no tag at all; != null: some tag
            tagged = Experiment.id.in_(select(ExperimentTag.experiment_id))
            return not_(tagged) if op == "=" else tagged
        # != 'a' is "not tagged a" (untagged runs included): the negation of = 'a'.
        match = _compare(ExperimentTag.tag, "=" if op == "!=" else op, value)
        has = Experiment.id.in_(select(ExperimentTag.experiment_id).where(match))
        return not_(has) if op == "!=" else has
    raise AssertionError(f"no SQL for key kind {kind!r}")  # the parser admits no other


def where_clause(flt: Filter) -> ColumnElement[bool]:
    """The WHERE condition of a parsed filter on `Experiment` (true() for the empty one)."""
    parts = []
    for clause in flt.clauses:
        if clause.op == "in":
            parts.append(or_(*(_one(clause, "=", v) for v in clause.values)))
        else:
            parts.append(_one(clause, clause.op, clause.values[0]))
    return and_(true(), *parts)


def sort_columns(order: OrderBy) -> list[ColumnElement[Any]]:
    """The expressions a sort key sorts on, most significant first (before the id)."""
    key = order.key
    if key.kind == "params":
        return [_param_number(key.path), _param_text(key.path)]
    if key.kind == "metrics":
        return [getattr(Experiment, key.path[0])]
    if key.kind == "owner":
        return [select(User.name).where(User.id == Experiment.owner_id).scalar_subquery()]
    return [{"status": Experiment.status, "name": Experiment.name,
             "project": Experiment.project, "sweep": Experiment.sweep_id}[key.kind]]


def order_clauses(order: OrderBy | None) -> list[Any]:
    """ORDER BY terms: the key's columns (missing values last either way), then id desc.
    None: newest first (id desc), the listing's default."""
    terms: list[Any] = []
    if order is not None:
        for column in sort_columns(order):
            terms.append((column.desc() if order.descending else column.asc()).nulls_last())
    return [*terms, Experiment.id.desc()]


def _after(order: OrderBy, values: list[Any], last_id: int) -> ColumnElement[bool]:
    """Rows that sort after a row whose sort columns hold `values` and whose id is `last_id`
    (the keyset condition of the next page, matching `order_clauses`)."""
    columns = sort_columns(order)
    alternatives, same = [], []
    for column, value in zip(columns, values, strict=True):
        if value is not None:  # nothing but another NULL sorts after a NULL (nulls last)
            beyond = column < value if order.descending else column > value
            alternatives.append(and_(*same, or_(beyond, column.is_(None))))
        same.append(column.is_(None) if value is None else column == value)
    alternatives.append(and_(*same, Experiment.id < last_id))
    return or_(*alternatives)


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


def encode_sorted_cursor(order: OrderBy, values: Sequence[Any], last_id: int) -> str:
    """The opaque cursor after a row of a sorted listing (its sort values and id)."""
    text = json.dumps([order.text, [_plain(v) for v in values], last_id], separators=(",", ":"))
    raw = (_CURSOR_PREFIX + text).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_sorted_cursor(cursor: str, order: OrderBy) -> tuple[list[Any], int]:
    """(sort values, id) of a cursor made for this sort order; raises InvalidCursor."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        text = base64.urlsafe_b64decode(padded.encode("ascii")).decode("utf-8")
        if not text.startswith(_CURSOR_PREFIX):
            raise ValueError(text)
        made_for, values, last_id = json.loads(text.removeprefix(_CURSOR_PREFIX))
        ok = (
            made_for == order.text
            and isinstance(values, list)
            and len(values) == len(sort_columns(order))
            and all(v is None or type(v) in (int, float, str) for v in values)
            and type(last_id) is int
            and 1 <= last_id <= 2**31 - 1
        )
        if not ok:
            raise ValueError(text)
        return values, last_id
    except (ValueError, TypeError, UnicodeError, binascii.Error) as exc:
        raise InvalidCursor(cursor) from exc


def search_experiments(
    session: Session,
    *,
    filter: str | Filter | None = None,
    order_by: str | OrderBy | None = None,
    status: JobStatus | str | None = None,
    tag: str | None = None,
    owner: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
    param_paths: Collection[str] | None = None,
    project: str | None = None,
    archived: bool = False,
) -> ExperimentPage:
    """One page of the experiments that match `filter`, sorted by `order_by` (default:
    newest first, with the same cursors as `store.experiments.list_experiments`).

    `filter`/`order_by` are texts of the grammar (docs/filters.md) or trees from
    `store.run_filter`; `status`, `tag`, `owner` and `project` add `key = value` clauses (the
    listing's query parameters). Archived runs are left out unless `archived`. Keyset pagination: pass the returned `next_cursor` with the
    same filter and order to continue. Raises FilterError (a 422, naming the token) and
    InvalidCursor.
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    flt = filter if isinstance(filter, Filter) else parse_filter(filter, param_paths=param_paths)
    order = order_by if isinstance(order_by, OrderBy) or order_by is None else parse_order(
        order_by, param_paths=param_paths
    )
    extra = [equals(k, _plain(v)) for k, v in (("status", status), ("tag", tag),
                                                ("owner", owner), ("project", project))
             if v is not None]
    flt = Filter(flt.clauses + tuple(extra))
    keys = sort_columns(order) if order is not None else []
    query = (
        select(Experiment, *(k.label(f"sort_{i}") for i, k in enumerate(keys)))
        .options(joinedload(Experiment.owner))
        .where(where_clause(flt))
    )
    if not archived:
        query = query.where(Experiment.archived_at.is_(None))
    if cursor and order is None:
        query = query.where(Experiment.id < decode_cursor(cursor))
    elif cursor and order is not None:
        query = query.where(_after(order, *decode_sorted_cursor(cursor, order)))
    rows = session.execute(query.order_by(*order_clauses(order)).limit(limit + 1)).all()
    items = [row[0] for row in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = (
            encode_cursor(last[0].id)
            if order is None
            else encode_sorted_cursor(order, list(last[1:]), last[0].id)
        )
    return ExperimentPage(items=items, next_cursor=next_cursor)


__all__ = [
    "json_kind",
    "order_clauses",
    "search_experiments",
    "sort_columns",
    "where_clause",
]
