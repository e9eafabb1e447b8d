"""Managing runs after the fact, over the API:

    ewc rerun 12 --set ewc.lambda=10 --set seed=1 [--project P] [--wait]
    ewc edit 12 --name "ewc λ=10" --tag baseline --untag draft --notes "lr too high"
    ewc archive 12          # hidden from `ewc list` (see it with --archived)
    ewc restore 12
    ewc purge 12 --yes      # admin: the run and its artifacts, for good
    ewc cancel-sweep 3      # every queued or running point of sweep 3

`--set PATH=VALUE` names a dotted spec path; the value is JSON where it parses (10, 0.5,
true, null, [400,400]), else text. The server checks the whole spec (a bad override is
refused with its path). `ewc cancel-sweep` is its own command because `ewc sweep` is one
command (submit), not a group.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cli.client import DEFAULT_URL, AsJson, Client, Profile, Token, Url, console, err_console, fail
from cli.jobs import EXIT_CODES, EXIT_TIMEOUT, WaitTimeout, wait_for
from cli.output import Output, emit
from store.sweeps import grid_value

ExperimentArg = Annotated[int, typer.Argument(help="Experiment id.", min=1)]


def parse_sets(entries: list[str] | None) -> dict[str, Any]:
    """{path: value} of `--set PATH=VALUE` options; a malformed one ends the command."""
    overrides: dict[str, Any] = {}
    for entry in entries or []:
        path, sep, raw = entry.partition("=")
        path = path.strip()
        if not sep or not path:
            raise typer.BadParameter(f"{entry!r}: write PATH=VALUE, e.g. ewc.lambda=10",
                                     param_hint="--set")  # fmt: skip
        if path in overrides:
            raise typer.BadParameter(f"{path} is given twice", param_hint="--set")
        overrides[path] = grid_value(raw)
    return overrides


def _print(doc: dict, output: Any, as_json: bool, line: str) -> None:
    """The server's answer as JSON (`-o json`/`--json`), one CSV row, or `line`."""
    emit(doc, output, as_json=as_json, table=lambda: console.print(line, highlight=False))


def rerun(
    experiment_id: ExperimentArg,
    set_: Annotated[list[str] | None, typer.Option("--set", help="PATH=VALUE: change the "
                    "spec at a dotted path (repeatable), e.g. ewc.lambda=10.")] = None,
    project: Annotated[str | None, typer.Option("--project", show_default=False,
                       help="File the new run here (default: the original's project).")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the new run until it ends; "
                    "exit 0 succeeded, 3 failed, 4 cancelled.")] = False,
    timeout: Annotated[float | None, typer.Option("--timeout", min=0, show_default=False,
                       help="With --wait: stop waiting after this many seconds (exit 5).")] = None,
    output: Output = None,
    as_json: AsJson = False,
    url: Url = DEFAULT_URL,
    token: Token = None,
    profile: Profile = None,
) -> None:
    """Queue an experiment again: the same spec (with --set overrides), tags and project;
    the new run records which one it re-ran. Prints the new id."""
    client = Client(url, token, profile=profile)
    exp = client.rerun(experiment_id, parse_sets(set_), project=project).model_dump(mode="json")
    err_console.print(f"re-ran #{experiment_id} as [bold]#{exp['id']}[/bold] ({exp['status']})")
    if wait:
        try:
            exp = wait_for(client, exp["id"], timeout=timeout)
        except WaitTimeout as stopped:
            err_console.print(f"stopped waiting after {timeout:g} s: {stopped} (exit 5)")
            raise typer.Exit(EXIT_TIMEOUT) from None
    _print(exp, output, as_json, str(exp["id"]) if not wait else f"#{exp['id']}: {exp['status']}")
    if wait and exp["status"] != "succeeded":
        raise typer.Exit(EXIT_CODES.get(exp["status"], 1))


def edit(
    experiment_id: ExperimentArg,
    name: Annotated[str | None, typer.Option("--name", show_default=False,
                    help='A new name ("" clears it).')] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="Add a tag (repeatable).")] = None,
    untag: Annotated[list[str] | None, typer.Option("--untag", help="Remove a tag (repeatable).")] = None,
    notes: Annotated[str | None, typer.Option("--notes", show_default=False,
                     help='Free-text notes ("" clears them).')] = None,
    project: Annotated[str | None, typer.Option("--project", show_default=False,
                       help="Move it to this project.")] = None,
    output: Output = None,
    as_json: AsJson = False,
    url: Url = DEFAULT_URL,
    token: Token = None,
    profile: Profile = None,
) -> None:
    """Change an experiment's name, tags, notes or project (yours, or any as an admin)."""
    if name is None and notes is None and project is None and not tag and not untag:
        raise fail("nothing to change: give --name, --tag, --untag, --notes or --project")
    client = Client(url, token, profile=profile)
    changes: dict[str, Any] = {"project": project}
    if name is not None:
        changes["name"] = name or None
    if notes is not None:
        changes["notes"] = notes or None
    if tag or untag:
        current = client.get(experiment_id).tags
        dropped = set(untag or [])
        changes["tags"] = [t for t in dict.fromkeys([*current, *(tag or [])]) if t not in dropped]
    exp = client.edit(experiment_id, **changes).model_dump(mode="json")
    tags = ", ".join(exp["tags"]) or "no tags"
    _print(exp, output, as_json, f"#{exp['id']} {exp['name'] or '(no name)'} · {tags} · project "
           f"{exp['project']}")  # fmt: skip


def archive(
    experiment_id: ExperimentArg,
    output: Output = None,
    as_json: AsJson = False,
    url: Url = DEFAULT_URL,
    token: Token = None,
    profile: Profile = None,
) -> None:
    """Archive a finished experiment: hidden from listings (ewc list --archived shows it),
    still readable by id. A queued or running one must be cancelled first."""
    exp = Client(url, token, profile=profile).archive(experiment_id).model_dump(mode="json")
    _print(exp, output, as_json, f"#{exp['id']}: archived (ewc restore {exp['id']} brings it back)")


def restore(
    experiment_id: ExperimentArg,
    output: Output = None,
    as_json: AsJson = False,
    url: Url = DEFAULT_URL,
    token: Token = None,
    profile: Profile = None,
) -> None:
    """Bring an archived experiment back into listings."""
    exp = Client(url, token, profile=profile).restore(experiment_id).model_dump(mode="json")
    _print(exp, output, as_json, f"#{exp['id']}: restored")


def purge(
    experiment_id: ExperimentArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    output: Output = None,
    url: Url = DEFAULT_URL,
    token: Token = None,
    profile: Profile = None,
) -> None:
    """Delete a finished experiment for good: its metrics, logs and artifacts (admin only)."""
    if not yes and not typer.confirm(f"Delete experiment #{experiment_id} and its artifacts "
                                     "for good?"):  # fmt: skip
        raise typer.Exit(1)
    done = Client(url, token, profile=profile).purge(experiment_id).model_dump(mode="json")
    _print(done, output, False, f"#{done['id']}: purged ({done['artifacts_deleted']} artifact "
           "files deleted)")  # fmt: skip


def cancel_sweep(
    sweep_id: Annotated[int, typer.Argument(help="Sweep id.", min=1)],
    output: Output = None,
    as_json: AsJson = False,
    url: Url = DEFAULT_URL,
    token: Token = None,
    profile: Profile = None,
) -> None:
    """Cancel every queued or running point of a sweep (yours, or any as an admin)."""
    done = Client(url, token, profile=profile).cancel_sweep(sweep_id).model_dump(mode="json")
    _print(done, output, as_json, f"sweep {sweep_id}: {len(done['cancelled'])} cancelled, "
           f"{len(done['stopping'])} stopping, {done['finished']} already finished")  # fmt: skip


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command("rerun")(rerun)
    app.command("edit")(edit)
    app.command("archive")(archive)
    app.command("restore")(restore)
    app.command("purge")(purge)
    app.command("cancel-sweep")(cancel_sweep)
