"""`ewc logs ID [-f] [-o table|json|csv]`: a job's captured log lines, followed while it
runs. `table` (the default) prints each line as text (`<time> <level> [attempt <n>]
<message>`), `json` (or `--json`) one JSON object a line (`id`, `attempt`, `level`, `time`,
`message`: `ewc logs 12 -o json | jq -r .message` works while following), `csv` a header
line and then a row a line."""

from __future__ import annotations

import csv
import json
import sys
from typing import Annotated

import typer

from cli.client import DEFAULT_URL, AsJson, Client, Profile, Token, Url
from cli.output import Format, Output, cell, resolve
from common.schemas_logs import LogLineOut

#: Lines asked for per page (the server's most).
PAGE = 5000
COLUMNS = ["id", "attempt", "level", "time", "message"]


def logs(
    experiment_id: Annotated[int, typer.Argument(help="Experiment id.")],
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines until the job ends.")
    ] = False,
    after: Annotated[
        int, typer.Option("--after", min=0, help="Only lines after this line id.")
    ] = 0,
    output: Output = None,
    as_json: AsJson = False,
    url: Url = DEFAULT_URL,
    token: Token = None,
    profile: Profile = None,
) -> None:
    """Print a job's log: its worker's log lines, TensorFlow's warnings and a failure's
    traceback, from whichever host ran it. `-f` follows a running job to its end."""
    client = Client(url, token, profile=profile)
    fmt = resolve(output, as_json)
    writer = csv.writer(sys.stdout, lineterminator="\n")
    if fmt is Format.csv:
        writer.writerow(COLUMNS)

    def show(line: LogLineOut) -> None:
        if fmt is Format.json:
            sys.stdout.write(json.dumps(line.model_dump(mode="json"), ensure_ascii=False) + "\n")
        elif fmt is Format.csv:
            row = line.model_dump(mode="json")
            writer.writerow([cell(row[c]) for c in COLUMNS])
        else:
            sys.stdout.write(line.text() + "\n")
        sys.stdout.flush()

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
