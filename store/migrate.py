"""Run the Alembic migrations from Python: `ewc migrate`, `ewc up` and the tests use this.

The Alembic configuration ships inside the `migrations` package, so this works from an
installed copy as well as from a checkout.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from store.db import make_engine


def migrations_dir() -> Path:
    """The folder of the `migrations` package (env.py, alembic.ini, versions/)."""
    return Path(str(resources.files("migrations")))


def alembic_config(url: str) -> Config:
    """An Alembic Config for the packaged migrations, pointed at database `url`."""
    folder = migrations_dir()
    config = Config(str(folder / "alembic.ini"))
    config.set_main_option("script_location", str(folder))
    # ConfigParser interpolates '%': a URL with an escaped password must double them.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at `url` up to `revision` (default: the newest)."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    """Migrate the database at `url` down to `revision` ("base" empties it)."""
    command.downgrade(alembic_config(url), revision)


def head_revision() -> str | None:
    """The newest revision id of the packaged migrations."""
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def current_revision(url: str) -> str | None:
    """The revision the database at `url` is at (None when never migrated)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
