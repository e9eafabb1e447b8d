"""`ewc logs ID [-f]`: a job's captured log lines, followed while it runs."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from cli.client import DEFAULT_URL, AsJson, Client, Token, Url
from common.schemas_logs import LogLineOut

#: Lines asked for per page (the server's most).
PAGE = 5000


def logs(
    experiment_id: Annotated[int, typer.Argument(help="Experiment id.")],
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines until the job ends.")
    ] = False,
    after: Annotated[
        int, typer.Option("--after", min=0, help="Only lines after this line id.")
    ] = 0,
    as_json: AsJson = False,
    url: Url = DEFAULT_URL,
    token: Token = None,
) -> None:
    """Print a job's log: its worker's log lines, TensorFlow's warnings and a failure's
    traceback, from whichever host ran it. `-f` follows a running job to its end."""
    client = Client(url, token)

    def show(line: LogLineOut) -> None:
        if as_json:
            typer.echo(json.dumps(line.model_dump(mode="json")))
        else:
            typer.echo(line.text())

    if follow:
        for line in client.follow_logs(experiment_id, after=after):
            show(line)
        return
    cursor = after
    while True:
        page = client.logs(experiment_id, after=cursor, limit=PAGE)
        for line in page.lines:
            show(line)
        if len(page.lines) < PAGE:
            return
        cursor = page.next_after


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command("logs")(logs)
