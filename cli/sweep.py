"""`ewc sweep`: submit a grid of experiments to the server and (with --wait) follow it.

    ewc sweep --dataset digits --dataset-update permute --splits 3 --epochs 6 --ewc \\
        --grid ewc.lambda=1,10,100 --grid seed=0,1,2 --wait

The base spec comes from the original flags and/or `--base-spec FILE` (JSON); each
`--grid PATH=V1,V2,...` names a dotted spec path and its values (parsed as JSON where they
can be: 1, 0.5, true, null; otherwise strings). The server validates every point first.

`ewc sweep show ID` (also `ewc sweeps show ID`) prints a sweep's per-point mean ± std and
its best point, named only when it beats the runner-up by more than the noise (the
server's `best_reason` says why or why not); `ewc sweeps list` lists sweeps. Both take
`-o table|json|csv`. `--wait` exits like `ewc submit --wait`: 0 when every run succeeded,
3 when one failed, 4 when one was cancelled (and none failed).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from cli import flags as F
from cli.client import DEFAULT_URL, AsJson, Client, Profile, Token, Url, console, err_console
from cli.jobs import exit_code
from cli.output import Output, emit
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


def print_points(doc: dict) -> None:
    """The points table, then which point is best and why (or why none is)."""
    console.print(points_table(doc))
    best = doc.get("best")
    shown = ", ".join(f"{k}={v}" for k, v in (best or {}).items())
    head = f"[bold green]best: {shown or 'the only point'}[/bold green]" if best is not None \
        else "[yellow]no best point[/yellow]"  # fmt: skip
    console.print(f"{head}: {doc.get('best_reason') or ''}", highlight=False)


def point_rows(doc: dict) -> list[dict]:
    """One flat row per point: its grid values, then `<metric>_mean/_std/_n`, runs, best."""
    rows = []
    for p in doc["points"]:
        row = dict(p["params"])
        for metric, st in p["metrics"].items():
            row.update({f"{metric}_{k}": st.get(k) for k in ("mean", "std", "n")})
        row.update(runs=len(p["experiment_ids"]), best=p["best"])
        rows.append(row)
    return rows


def show(
    sweep_id: Annotated[int, typer.Argument(help="Sweep id.")],
    output: Output = None,
    as_json: AsJson = False,
    url: Url = DEFAULT_URL,
    token: Token = None,
    profile: Profile = None,
) -> None:
    """A sweep's per-point mean ± std over seeds and its best point (named only when it
    beats the runner-up by more than the noise); -o csv: one line a point."""
    doc = Client(url, token, profile=profile).sweep(sweep_id).model_dump(mode="json")
    emit(doc, output, as_json=as_json, rows=point_rows(doc), table=lambda: print_points(doc))


def list_sweeps(
    limit: Annotated[int | None, typer.Option("--limit", min=1, show_default=False,
                     help="At most this many (default: every sweep).")] = None,
    output: Output = None,
    as_json: AsJson = False,
    url: Url = DEFAULT_URL,
    token: Token = None,
    profile: Profile = None,
) -> None:
    """Sweeps, newest first, with their runs counted by status."""
    items = []
    for summary in Client(url, token, profile=profile).sweeps(page_size=min(limit or 200, 200)):
        items.append(summary.model_dump(mode="json"))
        if limit is not None and len(items) >= limit:
            break
    rows = [{"id": s["id"], "name": s["name"], "owner": s["owner"],
             "grid": ",".join(s["grid"]), "runs": sum(s["counts"].values()),
             **s["counts"], "created_at": s["created_at"]}
            for s in items]  # fmt: skip
    emit({"items": items, "next_cursor": None}, output, as_json=as_json, rows=rows)


@F.with_spec_flags
def sweep(
    flags: F.SpecFlags,
    grid: Annotated[
        list[str] | None,
        typer.Option("--grid", help="PATH=V1,V2,... (repeatable), e.g. ewc.lambda=1,10,100."),
    ] = None,
    base_spec: Annotated[
        Path | None,
        typer.Option("--base-spec", help="JSON file with the base spec; flags override it.",
                     exists=True, dir_okay=False, show_default=False),
    ] = None,
    action: Annotated[list[str] | None, typer.Argument(
        help="`show ID`: print sweep ID instead of submitting one.", show_default=False,
        metavar="[show ID]")] = None,
    name: Annotated[str | None, typer.Option("--name", help="A name for the sweep.")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="A tag for every run.")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the runs until all end.")] = False,
    poll_s: Annotated[float, typer.Option("--poll", help="Seconds between checks.")] = 2.0,
    output: Output = None,
    as_json: AsJson = False,
    url: Url = DEFAULT_URL,
    token: Token = None,
    profile: Profile = None,
) -> None:
    """Submit one experiment per grid point (dotted spec paths), with the original flags as
    the base; print the sweep id, or with --wait its per-point mean ± std over seeds.
    `ewc sweep show ID` prints an existing sweep."""
    if action:
        if len(action) != 2 or action[0] != "show" or not action[1].isdigit():
            raise typer.BadParameter(f"{' '.join(action)!r}: the only sub-command is "
                                     "`ewc sweep show ID`", param_hint="[show ID]")  # fmt: skip
        return show(int(action[1]), output, as_json, url, token, profile)
    if not grid:
        raise typer.BadParameter("give at least one --grid PATH=V1,V2,...", param_hint="--grid")
    grid_dict = parse_grid(grid)
    base = flags.to_spec(
        spec_file=base_spec, extra={"tags": tag} if tag else None
    ).to_json_dict()  # fmt: skip
    client = Client(url, token, profile=profile)
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
    if as_json or output:
        emit(doc, output, as_json=as_json, rows=point_rows(doc) if wait else [doc],
             columns=None if wait else ["id", "name", "experiment_ids"],
             table=lambda: print_points(doc) if wait else console.print(created["id"]))  # fmt: skip
    elif wait:
        print_points(doc)
    else:
        console.print(created["id"])
    if wait and exit_code(doc["counts"]):
        raise typer.Exit(exit_code(doc["counts"]))


sweeps_app = typer.Typer(help="List sweeps and show one.", no_args_is_help=True)
sweeps_app.command("list")(list_sweeps)
sweeps_app.command("show")(show)


def register(app: typer.Typer) -> None:
    """Add `ewc sweep` and `ewc sweeps list|show` to the `ewc` app."""
    app.command("sweep")(sweep)
    app.add_typer(sweeps_app, name="sweeps")
