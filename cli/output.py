"""One output option for every read command: `--output/-o table|json|csv`.

    from cli.output import Output, emit

    def my_list(output: Output = None, as_json: AsJson = False, ...):
        page = client.something().model_dump(mode="json")
        emit(page, output, as_json=as_json, rows=page["items"],
             columns=["id", "name", "status"])

- `json` prints the whole document (`json.dumps`, indented; plain text, no colour), so
  `ewc ... -o json | jq` works; `--json` stays as its alias where a command had it.
- `csv` prints `rows` (a list of flat dicts; one object is one row) with a header line,
  nested values as compact JSON in their cell; `columns` picks and orders the columns.
- `table` (the default) prints a Rich table of `rows`, or the command's own renderable
  (`table=...`: a Rich Table, or a callable printing the human view) when it has one.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from enum import Enum
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table


class Format(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


Output = Annotated[
    Format | None,
    typer.Option(
        "--output", "-o",
        help="table (default), json (the whole document) or csv (one line a row).",
        case_sensitive=False, show_default=False,
    ),
]  # fmt: skip


def resolve(output: Format | str | None, as_json: bool = False) -> Format:
    """The format asked for: `--output` wins, `--json` is `-o json`, else a table."""
    if output is not None:
        return Format(output)
    return Format.json if as_json else Format.table


def cell(value: Any) -> str:
    """A value as one table/CSV cell: '' for None, compact JSON for lists and dicts."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, separators=(",", ":"), default=str)
    return str(value)


def _as_rows(data: Any) -> list[Mapping[str, Any]]:
    if isinstance(data, Mapping):
        if isinstance(data.get("items"), list):  # a page: its items
            return list(data["items"])
        return [data]
    return list(data or [])


def _columns(rows: Sequence[Mapping[str, Any]], columns: Iterable[str] | None) -> list[str]:
    if columns is not None:
        return list(columns)
    seen: dict[str, None] = {}
    for row in rows:
        for key in row:
            seen.setdefault(key, None)
    return list(seen)


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2, default=str, ensure_ascii=False)


def to_csv(rows: Any, columns: Iterable[str] | None = None) -> str:
    """CSV text (header line first, '\\n' line ends) of a list of flat dicts."""
    rows = _as_rows(rows)
    cols = _columns(rows, columns)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(cols)
    for row in rows:
        writer.writerow([cell(row.get(c)) for c in cols])
    return buffer.getvalue()


def rows_table(rows: Any, columns: Iterable[str] | None = None, title: str | None = None) -> Table:
    """A Rich table of a list of flat dicts (one object: a field/value table)."""
    if isinstance(rows, Mapping) and not isinstance(rows.get("items"), list):
        table = Table(show_header=False, title=title, title_justify="left")
        table.add_column("field")
        table.add_column("value")
        for key in _columns([rows], columns):
            table.add_row(key, cell(rows.get(key)))
        return table
    rows = _as_rows(rows)
    cols = _columns(rows, columns)
    table = Table(title=title, title_justify="left")
    for col in cols:
        table.add_column(col)
    for row in rows:
        table.add_row(*(cell(row.get(c)) for c in cols))
    return table


def emit(
    document: Any,
    output: Format | str | None = None,
    *,
    as_json: bool = False,
    rows: Any = None,
    columns: Iterable[str] | None = None,
    table: Table | Callable[[], None] | None = None,
    title: str | None = None,
    console: Console | None = None,
) -> None:
    """Print `document` in the asked format (see the module's docstring). `rows` defaults
    to the document (a page's `items`, a list, or one object as one row)."""
    fmt = resolve(output, as_json)
    if fmt is Format.json:
        sys.stdout.write(to_json(document) + "\n")
    elif fmt is Format.csv:
        sys.stdout.write(to_csv(document if rows is None else rows, columns))
    elif callable(table):
        table()
    else:
        shown = (
            table
            if table is not None
            else rows_table(document if rows is None else rows, columns, title)
        )
        (console or Console()).print(shown)
    sys.stdout.flush()
