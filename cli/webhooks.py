"""`ewc webhooks`: add, list and remove your webhooks; see their deliveries; send a test.

    ewc webhooks add https://example.org/hooks/ewc [--event experiment.finished]
    ewc webhooks list [--all]
    ewc webhooks deliveries [ID]
    ewc webhooks test ID
    ewc webhooks remove ID

The secret printed by `add` signs every call (README "Webhooks": how a receiver checks it);
it is shown that once.
"""

from __future__ import annotations

from typing import Annotated

import typer

from cli.client import DEFAULT_URL, Client, Profile, Token, Url, console
from cli.output import Output, emit

app = typer.Typer(
    help="Your webhooks: a signed JSON POST when your experiments and sweeps end.",
    no_args_is_help=True,
)

WebhookIdArg = Annotated[int, typer.Argument(help="Webhook id (see `ewc webhooks list`).")]
EVENTS = ("experiment.finished", "sweep.finished")


@app.command("add")
def add(
    url_: Annotated[str, typer.Argument(metavar="URL", help="http(s) URL to POST events to.")],
    event: Annotated[
        list[str] | None,
        typer.Option("--event", help=f"Only this event (repeatable): {', '.join(EVENTS)}."),
    ] = None,
    output: Output = None,
    url: Url = DEFAULT_URL,
    token: Token = None,
    profile: Profile = None,
) -> None:
    """Add a webhook; prints its signing secret (shown this once)."""
    hook = (
        Client(url, token, profile=profile).add_webhook(url_, event or None).model_dump(mode="json")
    )

    def human() -> None:
        console.print(f"webhook #{hook['id']} → {hook['url']} ({', '.join(hook['events'])})")
        console.print(f"secret: [bold]{hook['secret']}[/bold]")
        console.print("Keep the secret: it is shown only now. Test it: "
                      f"ewc webhooks test {hook['id']}")  # fmt: skip

    emit(hook, output, table=human)


@app.command("list")
def list_hooks(
    all_: Annotated[bool, typer.Option("--all", help="Everyone's (admins only).")] = False,
    output: Output = None,
    url: Url = DEFAULT_URL,
    token: Token = None,
    profile: Profile = None,
) -> None:
    """List your webhooks (secrets by their first characters)."""
    hooks = [
        h.model_dump(mode="json") for h in Client(url, token, profile=profile).webhooks(all=all_)
    ]
    columns = ["id", "owner", "url", "events", "secret_prefix", "created_at"]
    emit({"items": hooks}, output, rows=hooks, columns=columns)


@app.command("remove")
def remove(
    webhook_id: WebhookIdArg, url: Url = DEFAULT_URL, token: Token = None, profile: Profile = None
) -> None:
    """Remove a webhook and its delivery log."""
    Client(url, token, profile=profile).remove_webhook(webhook_id)
    console.print(f"webhook #{webhook_id} removed")


@app.command("deliveries")
def deliveries(
    webhook_id: Annotated[
        int | None, typer.Argument(help="Only this webhook's (default: all of yours).")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=200)] = 20,
    output: Output = None,
    url: Url = DEFAULT_URL,
    token: Token = None,
    profile: Profile = None,
) -> None:
    """The newest deliveries: event, status, attempts, the receiver's last answer."""
    items = [
        d.model_dump(mode="json")
        for d in Client(url, token, profile=profile).deliveries(webhook_id, limit)
    ]
    rows = [
        {**d, "answer": d["last_status_code"] or d["last_error"] or "",
         "created_at": d["created_at"][:19]}
        for d in items
    ]  # fmt: skip
    columns = ["id", "webhook_id", "event", "status", "attempts", "answer", "created_at"]
    emit({"items": items}, output, rows=rows, columns=columns)


@app.command("test")
def test_hook(
    webhook_id: WebhookIdArg,
    output: Output = None,
    url: Url = DEFAULT_URL,
    token: Token = None,
    profile: Profile = None,
) -> None:
    """Queue a `ping` to the webhook; a worker sends it (see `ewc webhooks deliveries`)."""
    d = Client(url, token, profile=profile).test_webhook(webhook_id).model_dump(mode="json")

    def human() -> None:
        console.print(
            f"ping queued (delivery #{d['id']}); see: ewc webhooks deliveries {webhook_id}"
        )

    emit(d, output, table=human)


def register(main: typer.Typer) -> None:
    """Add this module's commands to `main`."""
    main.add_typer(app, name="webhooks")
