"""Fixtures for the store tests: a database migrated to head (SQLite, then PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from store.db import make_engine, make_session_factory
from store.migrate import upgrade


def empty_database(url: str) -> None:
    """Drop everything in the database at `url` (PostgreSQL: the public schema)."""
    if not url.startswith("postgresql"):
        return  # the SQLite file is new for every test
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SET lock_timeout = '20s'"))
            conn.execute(sa.text("DROP SCHEMA public CASCADE"))
            conn.execute(sa.text("CREATE SCHEMA public"))
    finally:
        engine.dispose()


@pytest.fixture
def migrated_url(database_url: str) -> str:
    """`database_url`, emptied and migrated to the newest revision."""
    empty_database(database_url)
    upgrade(database_url)
    return database_url


@pytest.fixture
def session_factory(migrated_url: str) -> Iterator[sessionmaker[Session]]:
    """Sessions on the migrated database."""
    engine = make_engine(migrated_url)
    try:
        yield make_session_factory(engine)
    finally:
        engine.dispose()
