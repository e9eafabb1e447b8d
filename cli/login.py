"""`ewc login` and `ewc logout`: keep a server's URL and token in the per-user config file
(cli/config.py: `~/.config/ewc/config.toml`, mode 0600), under a profile name.

    ewc login --url https://ewc.example.org --token ewc_...     # profile "default"
    ewc login --profile lab --url http://lab:8000               # asks for the token
    ewc --help; ewc list --profile lab; EWC_PROFILE=lab ewc list
    ewc logout --profile lab

The token is checked against the server (one authenticated listing call) before it is saved.
"""

from __future__ import annotations

from typing import Annotated

import typer

from cli import config
from cli.client import err_console, fail, profile_choice
from client import Client as ApiClient
from client import ClientError

ProfileName = Annotated[
    str | None,
    typer.Option("--profile", envvar="EWC_PROFILE", show_default=False, callback=profile_choice,
                 help="Profile name (else `ewc --profile`, $EWC_PROFILE; default: default)."),
]  # fmt: skip


def login(
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            envvar="EWC_URL",
            show_default=False,
            help="Server address (default: the profile's, else http://127.0.0.1:8000).",
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="EWC_TOKEN",
            show_default=False,
            help="Bearer token (asked for, unseen, when not given).",
        ),
    ] = None,
    profile: ProfileName = None,
) -> None:
    """Check a token against the server and save the URL and token as a profile."""
    name = profile or config.DEFAULT_PROFILE
    try:
        stored = config.profiles(config.load()).get(name, {})
    except config.ConfigError as exc:
        raise fail(str(exc)) from None
    url = (url or stored.get("url") or config.DEFAULT_URL).rstrip("/")
    if not token:
        token = typer.prompt(f"token for {url}", hide_input=True).strip()
    try:
        with ApiClient(url, token, timeout=15.0) as client:
            client.page(limit=1)
    except ClientError as exc:
        raise fail(f"not saved: {exc}") from None
    try:
        path = config.set_profile(name, url, token)
    except OSError as exc:
        raise fail(f"cannot write the config file: {exc}") from None
    err_console.print(
        f"logged in to {url} as profile {name!r} (saved in {path}, mode 0600)", highlight=False
    )


def logout(profile: ProfileName = None) -> None:
    """Forget a profile's URL and token (the server's token stays valid: revoke it there)."""
    name = profile or config.DEFAULT_PROFILE
    try:
        removed = config.remove_profile(name)
    except (config.ConfigError, OSError) as exc:
        raise fail(str(exc)) from None
    if not removed:
        raise fail(f"no profile {name!r} in {config.config_path()}")
    err_console.print(f"removed profile {name!r} from {config.config_path()}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("login")(login)
    app.command("logout")(logout)
