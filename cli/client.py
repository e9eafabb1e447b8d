"""`Client`: the Python client (`client.Client`) as the client commands (`ewc submit`,
`ewc sweep`, ...) use it, its errors printed as one readable line, and the options they
share (`--url`, `--token`, `--profile`, `--json`).

The server and token a command uses: its flags, else `EWC_URL`/`EWC_TOKEN`, else a
`.env` in the current directory, else the `ewc login` profile (cli/config.py). The
profile: the command's `--profile`, else the global one (`ewc --profile NAME <command>`,
kept in the click context's `meta` by cli/main.py's callback), else `EWC_PROFILE`
(environment, then `.env`), else `default`. Every client command takes `Url`, `Token` and
`Profile` and passes `profile=` to `Client` (tests/cli/test_cli_conventions.py checks).
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from cli import config
from client import Client as ApiClient
from client import ClientError

console = Console()
err_console = Console(stderr=True)



def _unless_default(ctx: typer.Context, param: typer.CallbackParam, value: str | None):
    """The option's value when its flag or environment variable gave it, None when it is
    the default: so the command's Client can look further (`.env`, then the profile)."""
    source = ctx.get_parameter_source(param.name or "")
    return None if source is None or source.name in ("DEFAULT", "DEFAULT_MAP") else value


Url = Annotated[
    str,
    typer.Option(
        "--url", envvar="EWC_URL", callback=_unless_default,
        help="Server address ($EWC_URL; else .env, else the profile, else this default).",
    ),
]  # fmt: skip
Token = Annotated[
    str | None,
    typer.Option("--token", envvar="EWC_TOKEN", show_default=False, callback=_unless_default,
                 help="Bearer token ($EWC_TOKEN; else .env, else the `ewc login` profile)."),
]  # fmt: skip
#: Where cli/main.py's callback keeps `ewc --profile NAME` (ctx.meta is shared by the
#: whole command chain).
GLOBAL_PROFILE = "ewc.profile"


def profile_choice(ctx: typer.Context, param: typer.CallbackParam, value: str | None):
    """A command's profile: its own `--profile` flag, else the global `ewc --profile`, else
    `$EWC_PROFILE` (None: cli/config.py looks in `.env`, then takes `default`)."""
    source = ctx.get_parameter_source(param.name or "")
    if source is not None and source.name == "COMMANDLINE":
        return value
    return ctx.meta.get(GLOBAL_PROFILE) or value


Profile = Annotated[
    str | None,
    typer.Option("--profile", envvar="EWC_PROFILE", show_default=False, callback=profile_choice,
                 help="The `ewc login` profile to use (else `ewc --profile`, $EWC_PROFILE, "
                      "default)."),
]  # fmt: skip
AsJson = Annotated[bool, typer.Option("--json", help="Print the raw JSON document (= -o json).")]
DEFAULT_URL = config.DEFAULT_URL


def target(url: str | None, token: str | None, profile: str | None = None) -> config.Target:
    """Where a command goes (cli/config.py's order) given its --url/--token (None when not
    given: the `Url`/`Token` options give None for their defaults) and --profile (None:
    $EWC_PROFILE, else "default"); a bad config file or an unknown profile: exit 1."""
    try:
        return config.resolve(url, token, profile)
    except config.ConfigError as exc:
        raise fail(str(exc)) from None


class Client(ApiClient):
    """The Python client for a command: no token is an error, and every error the server
    or the network gives ends the command with its message (exit code 1). Pass the
    command's `profile` (the `Profile` option) for its --profile to count."""

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
    err_console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(1)
