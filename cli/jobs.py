"""Client commands: talk to an EWC Server over HTTP.

`ewc submit <original flags> [--wait]`, `ewc status ID`, `ewc results ID`, `ewc cancel ID`,
`ewc list [--filter ... --order-by ...] [--all | --cursor C]`. The server and token come from
--url/--token, `EWC_URL`/`EWC_TOKEN`, `.env`, or the `ewc login` profile (cli/config.py).
Read commands print `-o table|json|csv` (cli/output.py). No TensorFlow here: these commands
start in a fraction of a second.

`ewc submit --wait` (and `ewc sweep --wait`) exit with the run's outcome: 0 succeeded,
3 failed, 4 cancelled, 5 still running when `--timeout` ran out (1: the command itself
failed, e.g. the server refused or was unreachable; 2: a bad flag).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cli import flags as F
from cli import live
from cli.client import DEFAULT_URL, AsJson, Client, Profile, Token, Url, console, err_console, fail
from cli.output import Format, Output, emit
from cli.output import resolve as resolve_format
from cli.report import result_renderables
from store.vocabulary import FINISHED_STATUSES

FINISHED = frozenset(FINISHED_STATUSES)
#: Exit codes of `--wait`: by final status, and when the wait timed out.
EXIT_CODES = {"succeeded": 0, "failed": 3, "cancelled": 4}
EXIT_TIMEOUT = 5
#: The flat columns of one experiment in `ewc list`/`ewc status` csv output.
COLUMNS = ("id", "name", "owner", "project", "status", "task", "num_tasks", "epoch", "total_epochs",
           "average_accuracy", "bwt", "forgetting", "tags", "created_at", "finished_at")  # fmt: skip


class WaitTimeout(Exception):
    """`--timeout` ran out while the experiment was still queued or running."""

    def __init__(self, exp: dict):
        super().__init__(f"#{exp['id']} still {exp['status']}")
        self.exp = exp


def exit_code(statuses: dict[str, int]) -> int:
    """The `--wait` exit code of runs counted by status: any failed → 3, else any cancelled
    → 4, else 0 (every run succeeded)."""
    for status in ("failed", "cancelled"):
        if statuses.get(status):
            return EXIT_CODES[status]
    return 0


def flat(exp: dict) -> dict:
    """One experiment as a flat row (COLUMNS): progress and summary spread out."""
    p = exp.get("progress") or {}
    s = exp.get("summary") or {}
    row = {**exp, **{k: p.get(k) for k in ("task", "num_tasks", "epoch", "total_epochs")}}
    row.update({k: s.get(k) for k in ("average_accuracy", "bwt", "forgetting")})
    row["tags"] = ",".join(exp.get("tags") or [])
    return {k: row.get(k) for k in COLUMNS}


def _progress_text(exp: dict) -> str:
    p = exp.get("progress") or {}
    return (
        f"{exp['status']:<9} task {p.get('task', 0)}/{p.get('num_tasks', 0)} "
        f"epoch {p.get('epoch', 0)}/{p.get('total_epochs', 0)}"
    )


def wait_for(
    client: Client, exp_id: int, poll_s: float = 1.0, timeout: float | None = None
) -> dict:
    """Show a live progress bar until the experiment finishes; returns its final document.
    With `timeout` (seconds) it polls (no event stream) and raises `WaitTimeout` past it."""
    deadline = None if timeout is None else time.monotonic() + timeout
    with Progress(
        TextColumn("[bold]#{task.fields[id]}[/bold]"),
        BarColumn(),
        TextColumn("{task.description}"),
        TextColumn("{task.fields[acc]}"),
        TimeElapsedColumn(),
        console=err_console,
    ) as progress:
        bar = progress.add_task("queued", total=None, id=exp_id, acc="")
        exp = None if deadline else live.follow_events(client, exp_id, progress, bar)  # SSE
        while exp is None or exp["status"] not in FINISHED:
            exp = client.get(exp_id).model_dump(mode="json")
            p = exp.get("progress") or {}
            acc = ""
            if exp["status"] == "running" and p.get("epoch"):
                metrics = client.metrics(exp_id).model_dump(mode="json")
                if metrics.get("epochs"):
                    last = metrics["epochs"][-1]["val_accuracy"]
                    acc = "val " + " ".join(f"{100 * a:.1f}" for a in last)
            progress.update(
                bar,
                description=_progress_text(exp),
                total=p.get("total_epochs") or None,
                completed=p.get("epoch") or 0,
                acc=acc,
            )
            if exp["status"] in FINISHED:
                return exp
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(exp)
            time.sleep(poll_s)
        return exp


@F.with_spec_flags
def submit(
    flags: F.SpecFlags,
    spec_file: F.SpecFile = None,
    name: Annotated[str | None, typer.Option("--name", help="A name for the experiment.")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="A tag (repeatable).")] = None,
    priority: Annotated[int, typer.Option("--priority", help="Higher runs first.")] = 0,
    device: Annotated[str, typer.Option("--device", help='"gpu", "cpu" or "any".')] = "any",
    project: Annotated[str | None, typer.Option("--project", show_default=False,
                       help="File it in this project (default: your user name).")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow progress until it ends; exit 0 "
                    "succeeded, 3 failed, 4 cancelled, 5 timed out.")] = False,
    timeout: Annotated[float | None, typer.Option("--timeout", min=0, show_default=False,
                       help="With --wait: stop waiting after this many seconds (exit 5; "
                       "the run goes on).")] = None,
    output: Output = None,
    as_json: AsJson = False,
    url: Url = DEFAULT_URL,
    token: Token = None,
    profile: Profile = None,
) -> None:
    """Submit an experiment to the server, with the original project's flags; `-o json`
    (= --json) prints the experiment's JSON instead of its id."""
    fmt = resolve_format(output, as_json)
    as_json = fmt is not Format.table  # json or csv: the document, not the human lines
    extra: dict[str, Any] = {"priority": priority, "device": device}
    if name:
        extra["name"] = name
    if tag:
        extra["tags"] = tag
    spec = flags.to_spec(spec_file=spec_file, extra=extra)
    client = Client(url, token, profile=profile)
    exp = client.submit(spec, project=project).model_dump(mode="json")
    err_console.print(f"submitted experiment [bold]#{exp['id']}[/bold] ({exp['status']})")
    if wait:
        try:
            exp = wait_for(client, exp["id"], timeout=timeout)
        except WaitTimeout as stopped:
            err_console.print(f"stopped waiting after {timeout:g} s: {stopped} (exit 5)")
            if as_json:
                emit(stopped.exp, fmt, rows=[flat(stopped.exp)])
            raise typer.Exit(EXIT_TIMEOUT) from None
        if not as_json:
            _print_results(client.metrics(exp["id"]).model_dump(mode="json"), exp)
    if as_json:
        emit(exp, fmt, rows=[flat(exp)])
    elif not wait:
        console.print(exp["id"])
    if wait and exp["status"] != "succeeded":
        raise typer.Exit(EXIT_CODES.get(exp["status"], 1))


def status(
    experiment_id: Annotated[int, typer.Argument(help="Experiment id.")],
    output: Output = None,
    as_json: AsJson = False,
    url: Url = DEFAULT_URL,
    token: Token = None,
    profile: Profile = None,
) -> None:
    """Show an experiment's status and progress."""
    exp = Client(url, token, profile=profile).get(experiment_id).model_dump(mode="json")
    emit(exp, output, as_json=as_json, rows=[flat(exp)], columns=COLUMNS,
         table=lambda: _print_status(exp))  # fmt: skip


def _print_status(exp: dict) -> None:
    table = Table(show_header=False, title=f"Experiment #{exp['id']}", title_justify="left")
    table.add_column("field")
    table.add_column("value")
    for key in ("name", "owner", "project", "status", "rerun_of", "archived_at", "notes",
                "device", "worker", "attempts", "error"):
        if exp.get(key) not in (None, ""):
            table.add_row(key, str(exp[key]))
    table.add_row("progress", _progress_text(exp))
    if exp.get("summary"):
        s = exp["summary"]
        table.add_row(
            "summary",
            f"avg {100 * s['average_accuracy']:.1f} %  bwt {100 * s['bwt']:.1f} %  "
            f"forgetting {100 * s['forgetting']:.1f} %",
        )
    console.print(table)


def _print_results(metrics: dict, exp: dict | None = None) -> None:
    for renderable in result_renderables(metrics):
        console.print(renderable)
    if exp and exp.get("error"):
        console.print(f"[red]{exp['status']}:[/red] {exp['error']}")


def results(
    experiment_id: Annotated[int, typer.Argument(help="Experiment id.")],
    output: Output = None,
    as_json: AsJson = False,
    plot: Annotated[Path | None, typer.Option("--plot", help="Save a plot PNG to this file "
                    "(accuracy matrix if the name contains 'matrix', else the curves).",
                    dir_okay=False, show_default=False)] = None,
    plot_kind: Annotated[str | None, typer.Option("--plot-kind", help="curves or "
                         "accuracy-matrix (overrides the file name).", show_default=False)] = None,
    url: Url = DEFAULT_URL,
    token: Token = None,
    profile: Profile = None,
) -> None:
    """Show an experiment's per-epoch table, accuracy matrix and summary (or save a plot);
    `-o csv` prints the epoch rows, `-o json` the whole metrics document."""
    client = Client(url, token, profile=profile)
    if plot is not None:
        try:
            kind = live.plot_kind_for(plot, plot_kind)
            size = live.save_plot(client, experiment_id, plot, kind)
        except (ValueError, RuntimeError) as exc:
            raise fail(str(exc)) from None
        err_console.print(f"saved the {kind} plot of #{experiment_id} to {plot} ({size} bytes)")
        return
    metrics = client.metrics(experiment_id).model_dump(mode="json")
    emit(metrics, output, as_json=as_json, rows=metrics.get("epochs") or [],
         table=lambda: _print_results(metrics, client.get(experiment_id).model_dump(mode="json")))  # fmt: skip


def cancel(
    experiment_id: Annotated[int, typer.Argument(help="Experiment id.")],
    output: Output = None,
    url: Url = DEFAULT_URL,
    token: Token = None,
    profile: Profile = None,
) -> None:
    """Cancel a queued or running experiment (yours, or any as an admin)."""
    exp = Client(url, token, profile=profile).cancel(experiment_id).model_dump(mode="json")
    note = " (stops within one epoch)" if exp["status"] == "running" else ""
    line = f"#{exp['id']}: {exp['status']}{note}"
    emit(exp, output, rows=[flat(exp)], table=lambda: console.print(line))


def list_experiments(
    filter_: Annotated[
        str | None,
        typer.Option(
            "--filter",
            help="Conditions joined by and (docs/filters.md), e.g. "
            "\"params.ewc.lambda > 10 and metrics.average_accuracy >= 0.9\".",
        ),
    ] = None,
    order_by: Annotated[
        str | None,
        typer.Option("--order-by", help="<key> [asc|desc], e.g. \"metrics.bwt desc\"."),
    ] = None,
    status_: Annotated[str | None, typer.Option("--status", help="Only this status.")] = None,
    tag: Annotated[str | None, typer.Option("--tag", help="Only with this tag.")] = None,
    owner: Annotated[str | None, typer.Option("--owner", help="Only this owner.")] = None,
    project: Annotated[str | None, typer.Option("--project", help="Only this project.")] = None,
    archived: Annotated[bool, typer.Option("--archived", help="Archived runs too.")] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, max=200, help="Runs per page.")] = 20,
    all_: Annotated[bool, typer.Option("--all", help="Every matching run, page after page.")] = False,
    cursor: Annotated[str | None, typer.Option("--cursor", show_default=False, help="Continue "
                      "from a page's next cursor (printed under the table; next_cursor in json).")] = None,
    output: Output = None,
    as_json: AsJson = False,
    url: Url = DEFAULT_URL,
    token: Token = None,
    profile: Profile = None,
) -> None:
    """List experiments, newest first or by --order-by, those matching --filter (and
    --status, --tag, --owner, --project; archived ones only with --archived), one page
    (--limit, --cursor) or --all. A bad filter is refused with where it went wrong."""
    client = Client(url, token, profile=profile)
    query = {"filter": filter_ or None, "order_by": order_by or None,
             "status": status_ or None, "tag": tag or None, "owner": owner or None,
             "project": project or None, "archived": archived}
    if all_:
        if cursor:
            raise fail("--all starts at the first page; leave out --cursor")
        items = [e.model_dump(mode="json") for e in client.runs(**query, page_size=200)]
        page = {"items": items, "next_cursor": None}
    else:
        page = client.page(**query, limit=limit, cursor=cursor).model_dump(mode="json")
    emit(page, output, as_json=as_json, rows=[flat(e) for e in page["items"]], columns=COLUMNS,
         table=lambda: _print_list(page))  # fmt: skip


def _print_list(page: dict) -> None:
    table = Table()
    for col in ("id", "name", "owner", "status", "progress", "avg acc %", "tags", "created"):
        table.add_column(col)
    for exp in page["items"]:
        s = exp.get("summary") or {}
        avg = s.get("average_accuracy")
        table.add_row(
            str(exp["id"]),
            exp.get("name") or "",
            str(exp.get("owner") or ""),
            exp["status"],
            _progress_text(exp).split(maxsplit=1)[1],
            "" if avg is None else f"{100 * avg:.1f}",
            ",".join(exp.get("tags") or []),
            str(exp.get("created_at", ""))[:19],
        )
    console.print(table)
    if page.get("next_cursor"):
        err_console.print(f"more: --cursor {page['next_cursor']} (or --all)", highlight=False)


def queues(
    output: Output = None,
    url: Url = DEFAULT_URL,
    token: Token = None,
    profile: Profile = None,
) -> None:
    """Each queue's waiting and running jobs and live workers, and jobs by status."""
    doc = Client(url, token, profile=profile).queues().model_dump(mode="json")
    rows = [{"queue": name, "waiting": q["waiting"], "running": q["running"],
             "workers": ",".join(w["name"] for w in q["workers"] if w["alive"])}
            for name, q in doc["queues"].items()]  # fmt: skip
    emit(doc, output, rows=rows, columns=["queue", "waiting", "running", "workers"])
    if resolve_format(output) is Format.table:
        counts = ", ".join(f"{n} {k}" for k, n in doc["status"].items())
        err_console.print(f"jobs: {counts}; dead workers (last day): {len(doc['dead_workers'])}")


def register(app: typer.Typer) -> None:
    """Add the client commands to the `ewc` app."""
    app.command("queues")(queues)
    app.command("submit")(submit)
    app.command("status")(status)
    app.command("results")(results)
    app.command("cancel")(cancel)
    app.command("list")(list_experiments)
