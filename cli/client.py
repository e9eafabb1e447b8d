"""`Client`: the Python client (`client.Client`) as the client commands (`ewc submit`,
`ewc sweep`, ...) use it, its errors printed as one readable line, and the options they
share (`--url`, `--token`, `--profile`, `--json`).

The server and token a command uses: its flags, else `EWC_URL`/`EWC_TOKEN`, else a
`.env` in the current directory, else the `ewc login` profile (cli/config.py).
"""

from __future__ import annotations

from typing import Annotated

import click
import typer
from rich.console import Console

from cli import config
from client import Client as ApiClient
from client import ClientError

console = Console()
err_console = Console(stderr=True)

Url = Annotated[
    str,
    typer.Option(
        "--url", envvar="EWC_URL",
        help="Server address ($EWC_URL; else .env, else the profile, else this default).",
    ),
]  # fmt: skip
Token = Annotated[
    str | None,
    typer.Option("--token", envvar="EWC_TOKEN", show_default=False,
                 help="Bearer token ($EWC_TOKEN; else .env, else the `ewc login` profile)."),
]  # fmt: skip
Profile = Annotated[
    str | None,
    typer.Option("--profile", envvar="EWC_PROFILE", show_default=False,
                 help="The `ewc login` profile to use ($EWC_PROFILE; default: default)."),
]  # fmt: skip
AsJson = Annotated[bool, typer.Option("--json", help="Print the raw JSON document (= -o json).")]
DEFAULT_URL = config.DEFAULT_URL


def _given(name: str, value: str | None) -> str | None:
    """`value` when the command's flag or environment variable set it, else None (inside a
    command, a value from the option's default is not "given"; outside one, any is)."""
    ctx = click.get_current_context(silent=True)
    if ctx is None or name not in ctx.params:
        return value
    source = ctx.get_parameter_source(name)
    defaulted = source in (None, click.core.ParameterSource.DEFAULT,
                           click.core.ParameterSource.DEFAULT_MAP)  # fmt: skip
    return None if defaulted else value


def target(url: str | None, token: str | None, profile: str | None = None) -> config.Target:
    """Where a command goes (cli/config.py's order); a bad config file or profile: exit 1."""
    ctx = click.get_current_context(silent=True)
    if profile is None and ctx is not None:
        profile = ctx.params.get("profile")
    try:
        return config.resolve(_given("url", url), _given("token", token), profile)
    except config.ConfigError as exc:
        raise fail(str(exc)) from None


class Client(ApiClient):
    """The Python client for a command: no token is an error, and every error the server
    or the network gives ends the command with its message (exit code 1)."""

    def __init__(
        self, url: str | None, token: str | None, timeout: float = 30.0,
        profile: str | None = None,
    ):  # fmt: skip
        self.target = target(url, token, profile)
        if not self.target.token:
            raise fail(
                "no token: pass --token, set EWC_TOKEN (or a line in .env), or run "
                "`ewc login`; `ewc up` prints one"
            )
        super().__init__(self.target.url, self.target.token, timeout)

    def raised(self, error: ClientError) -> Exception:
        return fail(str(error))


def fail(message: str) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(1)
