"""Engines and sessions. Built by factories, never at import time.

SQLite gets WAL mode, foreign keys and a busy timeout so that the API and a worker can
share one file; PostgreSQL gets pre-ping so a restarted server costs one retry, not a crash.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

#: Seconds to wait for a PostgreSQL server to accept a connection.
CONNECT_TIMEOUT_S = 5


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine for `url` (SQLite or PostgreSQL), with the pragmas this project relies on."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, echo=echo, connect_args={"timeout": 30, "check_same_thread": False}
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no cover - trivial
            # Let SQLAlchemy, not the driver, open transactions, so BEGIN IMMEDIATE works.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):  # pragma: no cover - trivial
            # Writers take the lock at BEGIN: no deadlock-prone lock upgrades.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    connect_args = {}
    if parsed.get_backend_name() == "postgresql":
        # A server that does not answer fails a request in seconds, not minutes.
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
    return create_engine(
        url,
        echo=echo,
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=20,
        pool_recycle=1800,
        pool_timeout=10,
        connect_args=connect_args,
    )


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """A session factory; sessions do not expire objects on commit."""
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def unit_of_work(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that commits when the block ends normally and rolls back on error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def ping(engine: Engine) -> None:
    """Raise if the database cannot answer `SELECT 1`."""
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"
