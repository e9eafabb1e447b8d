"""`ewc compare ID ID ... [--plot FILE --kind accuracy|average|loss|diff] [-o table|json|csv]`:
several experiments side by side, or in one picture.

Without `--plot`: a row per experiment (status, average accuracy, BWT, forgetting) and the
spec fields that differ (`GET /v1/experiments/compare`). With `--plot FILE`: the overlay PNG
of `GET /v1/experiments/compare/plot.png` saved to FILE; `--kind` defaults from the file's
name (`...diff...`, `...loss...`, `...average...`/`...avg...`), else `accuracy`.
No TensorFlow, no server code: the Python client and the vocabulary.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from api.vocabulary import COMPARE_PLOT_KINDS
from cli.client import DEFAULT_URL, AsJson, Client, Profile, Token, Url, console, err_console, fail
from cli.output import Output, cell, emit

COLUMNS = ["id", "name", "owner", "status", "average_accuracy", "bwt", "forgetting"]
#: Words in a --plot file name that choose the kind when --kind is not given.
NAME_HINTS = (("diff", "diff"), ("loss", "loss"), ("average", "average"), ("avg", "average"))


def kind_for(path: Path, kind: str | None) -> str:
    """The overlay to fetch: `kind` if given, else from the file name, else `accuracy`."""
    if kind:
        if kind not in COMPARE_PLOT_KINDS:
            raise ValueError(f"--kind must be one of {', '.join(COMPARE_PLOT_KINDS)}, not {kind!r}")
        return kind
    name = path.name.lower()
    return next((k for word, k in NAME_HINTS if word in name), "accuracy")


def _pct(value: Any) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def rows(doc: dict) -> list[dict]:
    """One flat row per experiment of a comparison document."""
    return [
        {"id": e["id"], "name": e.get("name"), "owner": e.get("owner"), "status": e["status"],
         **{k: (e.get("summary") or {}).get(k) for k in ("average_accuracy", "bwt", "forgetting")}}
        for e in doc["experiments"]
    ]  # fmt: skip


def show(doc: dict) -> None:
    """The human view: the summary table, then the differing spec fields."""
    ids = [e["id"] for e in doc["experiments"]]
    table = Table(title="Compared experiments", title_justify="left")
    for col, justify in (("#", "right"), ("name", "left"), ("status", "left"),
                         ("avg acc %", "right"), ("BWT %", "right"), ("forgetting %", "right")):  # fmt: skip
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for row in rows(doc):
        table.add_row(str(row["id"]), row["name"] or "", row["status"], _pct(row["average_accuracy"]),
                      _pct(row["bwt"]), _pct(row["forgetting"]))  # fmt: skip
    console.print(table)
    diff = doc.get("spec_differences") or {}
    if not diff:
        console.print("The specs are the same (apart from names and tags).")
        return
    fields = Table(title="Spec fields that differ", title_justify="left")
    fields.add_column("field")
    for i in ids:
        fields.add_column(f"#{i}")
    for path, values in diff.items():
        fields.add_row(path, *(cell(values.get(str(i))) or "off" for i in ids))
    console.print(fields)


def compare(
    experiment_ids: Annotated[list[int], typer.Argument(help="Experiment ids (two or more).")],
    plot: Annotated[Path | None, typer.Option(
        "--plot", help="Save the overlay PNG of these runs to this file.", dir_okay=False,
        show_default=False)] = None,
    kind: Annotated[str | None, typer.Option(
        "--kind", help="accuracy (per task), average (over the tasks seen), loss, or diff "
        "(two ids: the second's accuracy matrix minus the first's); default from the file "
        "name, else accuracy.", show_default=False)] = None,
    output: Output = None,
    as_json: AsJson = False,
    url: Url = DEFAULT_URL,
    token: Token = None,
    profile: Profile = None,
) -> None:  # fmt: skip
    """Compare experiments: their summaries and differing spec fields, or (--plot) one
    picture of all of them."""
    client = Client(url, token, profile=profile)
    if plot is not None:
        try:
            chosen = kind_for(plot, kind)
        except ValueError as exc:
            raise fail(str(exc)) from None
        png = client.compare_plot(experiment_ids, chosen)
        plot.parent.mkdir(parents=True, exist_ok=True)
        plot.write_bytes(png)
        err_console.print(f"saved the {chosen} overlay of {', '.join(f'#{i}' for i in experiment_ids)} "
                          f"to {plot} ({len(png)} bytes)")  # fmt: skip
        return
    doc = client.compare(experiment_ids).model_dump(mode="json")
    emit(doc, output, as_json=as_json, rows=rows(doc), columns=COLUMNS, table=lambda: show(doc))


def register(app: typer.Typer) -> None:
    """Add `ewc compare` to `app`."""
    app.command("compare")(compare)
