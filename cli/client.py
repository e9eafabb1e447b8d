"""`Client`: the thin HTTP client every client command (`ewc submit`, `ewc sweep`, ...) uses,
and the options they share (`--url`, `--token`, `--json`)."""

from __future__ import annotations

from typing import Annotated, Any

import httpx
import typer
from rich.console import Console

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


class Client:
    """A thin HTTP client for the v1 API; turns HTTP errors into readable CLI errors."""

    def __init__(self, url: str, token: str | None, timeout: float = 30.0):
        if not token:
            raise fail("no token: set EWC_TOKEN (or pass --token); `ewc up` prints one")
        self.http = httpx.Client(
            base_url=url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
        )

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            resp = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise fail(f"cannot reach {self.http.base_url}: {exc}") from None
        if resp.status_code >= 400:
            raise fail(f"{resp.status_code} {resp.reason_phrase}: {_error_text(resp)}")
        return resp.json() if resp.content else None


def _error_text(resp: httpx.Response) -> str:
    try:
        detail = resp.json().get("detail")
    except (ValueError, AttributeError):
        return resp.text[:500]
    if isinstance(detail, list):
        return "; ".join(
            f"{d.get('field', '.'.join(map(str, d.get('loc', []))))}: "
            f"{d.get('message', d.get('msg'))}"
            for d in detail
        )
    return str(detail)


def fail(message: str) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {message}")
    return typer.Exit(1)
