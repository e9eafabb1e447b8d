"""Deployment commands: `ewc migrate`, `ewc api`, `ewc users ...`, `ewc tokens ...`.

They act on the settings' database (`EWC_DATABASE_URL`, default SQLite under
`EWC_DATA_DIR`). Heavy imports (SQLAlchemy, Alembic, uvicorn) happen inside the commands,
so `ewc --help` stays fast. A failure prints one line `error: ...` and exits with code 1.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.table import Table

from cli.output import Output, emit, rows_table
from common.logs import configure_logging
from common.settings import get_settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

T = TypeVar("T")

users_app = typer.Typer(help="Create and list users.", no_args_is_help=True)
tokens_app = typer.Typer(help="Create, list and revoke API tokens.", no_args_is_help=True)


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(1)


def _database_url() -> str:
    return get_settings().resolved_database_url()


def _shown(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@contextmanager
def _session() -> Iterator[Session]:
    """A unit of work on the settings' database; store and database errors become exit 1."""
    from sqlalchemy.exc import SQLAlchemyError

    from store.db import make_engine, make_session_factory, unit_of_work
    from store.errors import StoreError, error_reason

    url = _database_url()
    engine = make_engine(url)
    try:
        with unit_of_work(make_session_factory(engine)) as session:
            yield session
    except (StoreError, ValueError) as exc:
        raise _fail(str(exc)) from None
    except SQLAlchemyError as exc:
        reason = error_reason(exc)
        raise _fail(
            f"database {_shown(url)}: {reason} (is it reachable, and migrated with `ewc migrate`?)"
        ) from None
    finally:
        engine.dispose()


def _run(action: Callable[[Session], T]) -> T:
    with _session() as session:
        return action(session)


def migrate() -> None:
    """Upgrade the settings' database to the newest schema (safe to run again)."""
    from sqlalchemy.exc import SQLAlchemyError

    from cli.local_service import make_private_sqlite, mask_password
    from store.errors import error_reason
    from store.migrate import current_revision, upgrade

    url = _database_url()
    try:
        make_private_sqlite(url)  # a new SQLite file is this user's only (0600)
        upgrade(url)
        revision = current_revision(url)
    except (SQLAlchemyError, OSError) as exc:
        reason = error_reason(exc)
        raise _fail(f"could not migrate {_shown(url)}: {mask_password(reason, url)}") from None
    typer.echo(f"database {_shown(url)} is at revision {revision} (head)")


def api(
    host: Annotated[str | None, typer.Option(help="Default: EWC_HOST.")] = None,
    port: Annotated[int | None, typer.Option(help="Default: EWC_PORT.")] = None,
) -> None:
    """Serve the HTTP API (uvicorn) on the settings' host and port."""
    import uvicorn

    from cli.local_service import API_APP, serve_options

    settings = get_settings()
    configure_logging(settings.log_level)
    uvicorn.run(API_APP, factory=True, **serve_options(settings, host, port))


@users_app.command("create")
def users_create(
    name: Annotated[str, typer.Argument(help="User name (unique).")],
    admin: Annotated[bool, typer.Option("--admin", help="May cancel anyone's jobs.")] = False,
) -> None:
    """Create a user and print its first token (shown only this once)."""
    from store import users

    def create(session: Session) -> str:
        user = users.create_user(session, name, is_admin=admin)
        _row, token = users.create_token(session, user)
        return token

    token = _run(create)
    typer.echo(
        f"created user {name}{' (admin)' if admin else ''}; its token (shown once):", err=True
    )
    typer.echo(token)


def _when(value) -> str:
    return f"{value:%Y-%m-%d %H:%M}" if value else "-"


def _iso(value) -> str | None:
    return value.isoformat() if value else None


@users_app.command("list")
def users_list(output: Output = None) -> None:
    """List users: id, name, admin, created."""
    from store import users

    rows = _run(lambda s: [{"id": u.id, "name": u.name, "is_admin": u.is_admin,
                            "created_at": _iso(u.created_at)} for u in users.list_users(s)])  # fmt: skip
    shown = [{**r, "is_admin": "yes" if r["is_admin"] else "no", "created_at": r["created_at"]
              and r["created_at"][:16].replace("T", " ")} for r in rows]  # fmt: skip
    emit(rows, output, table=rows_table(shown))


@tokens_app.command("create")
def tokens_create(name: Annotated[str, typer.Argument(help="User name.")]) -> None:
    """Create another token for a user and print it (shown only this once)."""
    from store import users

    token = _run(lambda s: users.create_token(s, users.get_user(s, name))[1])
    typer.echo(f"new token for {name} (shown once):", err=True)
    typer.echo(token)


@tokens_app.command("list")
def tokens_list(
    user: Annotated[str | None, typer.Option("--user", help="Only this user's tokens.")] = None,
    output: Output = None,
) -> None:
    """List tokens: id, user, first 6 characters, created, last used, revoked, and whether
    it is the admin token managed from EWC_ADMIN_TOKEN (never the token itself)."""
    from store import users

    def rows(session: Session) -> list[tuple]:
        owner = users.get_user(session, user) if user else None
        return [
            (
                t.id, t.user.name, users.shown_prefix(t), t.created_at, t.last_used_at,
                t.revoked_at, "EWC_ADMIN_TOKEN" if users.is_managed(t) else None,
            )
            for t in users.list_tokens(session, owner)
        ]  # fmt: skip

    found = _run(rows)
    keys = ("id", "user", "prefix", "created_at", "last_used_at", "revoked_at", "from")
    doc = [dict(zip(keys, (i, n, p, _iso(c), _iso(u), _iso(r), f), strict=True))
           for i, n, p, c, u, r, f in found]  # fmt: skip
    table = Table()
    for col in ("id", "user", "prefix", "created", "last used", "revoked", "from"):
        table.add_column(col)
    for i, n, p, c, u, r, f in found:
        table.add_row(str(i), n, p, _when(c), _when(u), _when(r), f or "-")
    emit(doc, output, table=table)


@tokens_app.command("revoke")
def tokens_revoke(
    token_id: Annotated[int, typer.Argument(help="Token id (`ewc tokens list`).")],
) -> None:
    """Revoke a token: it stops working at once."""
    from store import users

    name = _run(lambda s: users.revoke_token(s, token_id).user.name)
    typer.echo(f"revoked token {token_id} of {name}")


def register(app: typer.Typer) -> None:
    """Add the deployment commands to the `ewc` app."""
    app.command("migrate", help="Upgrade the database schema to the newest revision.")(migrate)
    app.command("api", help="Serve the HTTP API (uvicorn).")(api)
    app.add_typer(users_app, name="users")
    app.add_typer(tokens_app, name="tokens")
