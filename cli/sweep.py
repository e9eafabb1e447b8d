"""`ewc sweep`: submit a grid of experiments to the server and (with --wait) follow it.

    ewc sweep --dataset digits --dataset-update permute --splits 3 --epochs 6 --ewc \\
        --grid ewc.lambda=1,10,100 --grid seed=0,1,2 --wait

The base spec comes from the original flags and/or `--base-spec FILE` (JSON); each
`--grid PATH=V1,V2,...` names a dotted spec path and its values (parsed as JSON where they
can be: 1, 0.5, true, null; otherwise strings). The server validates every point first.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from cli import flags as F
from cli.client import DEFAULT_URL, AsJson, Client, Token, Url, console, err_console
from store.sweeps import GridError, parse_grid_entries
from store.vocabulary import FINISHED_STATUSES

FINISHED = FINISHED_STATUSES


def parse_grid(options: list[str]) -> dict[str, list[Any]]:
    """{path: values} from `--grid PATH=V1,V2,...` options; raises typer.BadParameter."""
    try:
        return parse_grid_entries(options)
    except GridError as exc:
        raise typer.BadParameter(str(exc), param_hint="--grid") from None


def _fmt(stats: dict) -> str:
    if not stats or stats.get("mean") is None:
        return "–"
    return f"{100 * stats['mean']:.1f} ± {100 * (stats.get('std') or 0):.1f}"


def points_table(doc: dict) -> Table:
    """The per-point statistics of a sweep document (percent, mean ± std over seeds)."""
    keys = [k for k in doc["grid"] if k != "seed"]
    table = Table(title=f"Sweep {doc['id']} {doc.get('name') or ''}".strip(), title_justify="left")
    for k in keys:
        table.add_column(k)
    for col in ("avg acc %", "BWT %", "forgetting %", "done", ""):
        table.add_column(col, justify="right")
    for p in doc["points"]:
        m = p["metrics"]
        table.add_row(
            *(str(p["params"].get(k)) for k in keys),
            _fmt(m.get("average_accuracy")),
            _fmt(m.get("bwt")),
            _fmt(m.get("forgetting")),
            f"{m['average_accuracy']['n']}/{len(p['experiment_ids'])}",
            "[bold green]best[/bold green]" if p["best"] else "",
        )
    return table


@F.with_spec_flags
def sweep(
    flags: F.SpecFlags,
    grid: Annotated[
        list[str],
        typer.Option("--grid", help="PATH=V1,V2,... (repeatable), e.g. ewc.lambda=1,10,100."),
    ],
    base_spec: Annotated[
        Path | None,
        typer.Option("--base-spec", help="JSON file with the base spec; flags override it.",
                     exists=True, dir_okay=False, show_default=False),
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="A name for the sweep.")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="A tag for every run.")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the runs until all end.")] = False,
    poll_s: Annotated[float, typer.Option("--poll", help="Seconds between checks.")] = 2.0,
    as_json: AsJson = False,
    url: Url = DEFAULT_URL,
    token: Token = None,
) -> None:
    """Submit one experiment per grid point (dotted spec paths), with the original flags as
    the base; print the sweep id, or with --wait its per-point mean ± std over seeds."""
    grid_dict = parse_grid(grid)
    base = flags.to_spec(
        spec_file=base_spec, extra={"tags": tag} if tag else None
    ).to_json_dict()  # fmt: skip
    client = Client(url, token)
    created = client.submit_sweep(base, grid_dict, name).model_dump(mode="json")
    err_console.print(
        f"sweep [bold]{created['id']}[/bold]: {len(created['experiment_ids'])} experiments "
        f"queued (#{created['experiment_ids'][0]}–#{created['experiment_ids'][-1]})"
    )
    doc = created
    if wait:
        with err_console.status("waiting") as status:
            while True:
                doc = client.sweep(created["id"]).model_dump(mode="json")
                counts = doc["counts"]
                status.update(", ".join(f"{n} {k}" for k, n in counts.items() if n))
                if sum(counts[k] for k in FINISHED) >= sum(counts.values()):
                    break
                time.sleep(poll_s)
    if as_json:
        console.print_json(json.dumps(doc))
    elif wait:
        console.print(points_table(doc))
    else:
        console.print(created["id"])
    if wait and doc["counts"].get("succeeded", 0) < sum(doc["counts"].values()):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add `ewc sweep` to the `ewc` app."""
    app.command("sweep")(sweep)
