"""`Client`: the Python client (`client.Client`) as the client commands (`ewc submit`,
`ewc sweep`, ...) use it, its errors printed as one readable line, and the options they
share (`--url`, `--token`, `--json`)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from client import Client as ApiClient
from client import ClientError

console = Console()
err_console = Console(stderr=True)

Url = Annotated[
    str,
    typer.Option("--url", envvar="EWC_URL", help="Server address ($EWC_URL)."),
]
Token = Annotated[
    str | None,
    typer.Option("--token", envvar="EWC_TOKEN", help="Bearer token ($EWC_TOKEN).", show_default=False),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print the raw JSON document.")]
DEFAULT_URL = "http://127.0.0.1:8000"


class Client(ApiClient):
    """The Python client for a command: no token is an error, and every error the server
    or the network gives ends the command with its message (exit code 1)."""

    def __init__(self, url: str, token: str | None, timeout: float = 30.0):
        if not token:
            raise fail("no token: set EWC_TOKEN (or pass --token); `ewc up` prints one")
        super().__init__(url, token, timeout)

    def raised(self, error: ClientError) -> Exception:
        return fail(str(error))


def fail(message: str) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {message}")
    return typer.Exit(1)
