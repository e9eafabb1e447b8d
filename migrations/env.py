"""Alembic environment: the target metadata is `store.models.Base.metadata`.

The database URL is the config's `sqlalchemy.url` main option when a caller set it
(`store.migrate.upgrade(url)` does), else the EWC settings' database. SQLite gets batch
mode, since it cannot ALTER most things in place.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from store.db import make_engine
from store.models import Base

config = context.config
target_metadata = Base.metadata


def database_url() -> str:
    """The URL to migrate: the config's `sqlalchemy.url`, else the settings' database."""
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from common.settings import get_settings

    return get_settings().resolved_database_url()


def render_item(type_, obj, autogen_context):
    """Render our UTC datetime decorator as the plain column type it stores."""
    from store.models import UTCDateTime

    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _configure(connection: Connection | None = None, url: str | None = None) -> None:
    is_sqlite = (connection.dialect.name if connection is not None else str(url)).startswith(
        "sqlite"
    )
    context.configure(
        connection=connection,
        url=url,
        target_metadata=target_metadata,
        render_as_batch=is_sqlite,
        compare_type=True,
        render_item=render_item,
        literal_binds=connection is None,
    )


def run_migrations_offline() -> None:
    """Emit SQL to stdout instead of running it (`alembic upgrade --sql`)."""
    _configure(url=database_url())
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations on a live connection (one given by the caller, or a new one)."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(database_url())
    try:
        with engine.connect() as conn:
            _configure(connection=conn)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
