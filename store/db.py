"""Engines and sessions. Built by factories, never at import time.

SQLite gets WAL mode, foreign keys and a busy timeout so that the API and a worker can
share one file; PostgreSQL gets pre-ping so a restarted server costs one retry, not a crash.

On SQLite a transaction begins `IMMEDIATE` (it takes the one write lock at BEGIN, so two
writers never deadlock on a lock upgrade) — except on a *read* engine
(`read_engine(engine)`, used by the API for GET requests), whose transactions begin
`DEFERRED`: in WAL mode readers take no lock, so reads never wait for a writer and never
make one wait.
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
#: The execution option that makes SQLite transactions begin DEFERRED (see `read_engine`).
READ_ONLY_OPTION = "ewc_read_only"
#: Default connection pool: `pool_size` kept open, `max_overflow` more on demand.
POOL_SIZE, MAX_OVERFLOW = 10, 20


def make_engine(
    url: str,
    *,
    echo: bool = False,
    pool_size: int = POOL_SIZE,
    max_overflow: int = MAX_OVERFLOW,
    pool_timeout: float = 10.0,
) -> Engine:
    """An engine for `url` (SQLite or PostgreSQL), with the pragmas this project relies on.

    The API sizes the pool from its thread limit (`api.app`); other processes keep the
    defaults."""
    parsed = make_url(url)
    pool = {"pool_size": pool_size, "max_overflow": max_overflow, "pool_timeout": pool_timeout}
    if parsed.get_backend_name() == "sqlite":
        in_memory = not parsed.database or parsed.database == ":memory:"
        if not in_memory:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            echo=echo,
            connect_args={"timeout": 30, "check_same_thread": False},
            **({} if in_memory else pool),
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
            # Writers take the lock at BEGIN: no deadlock-prone lock upgrades. Readers
            # (a read engine) take none: WAL lets them run beside the writer.
            read_only = conn.get_execution_options().get(READ_ONLY_OPTION, False)
            conn.exec_driver_sql("BEGIN DEFERRED" if read_only else "BEGIN IMMEDIATE")

        return engine
    connect_args = {}
    if parsed.get_backend_name() == "postgresql":
        # A server that does not answer fails a request in seconds, not minutes.
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
    return create_engine(
        url,
        echo=echo,
        pool_pre_ping=True,
        pool_recycle=1800,
        connect_args=connect_args,
        **pool,
    )


def read_engine(engine: Engine) -> Engine:
    """`engine` for transactions that mostly read: the same pool, but on SQLite they begin
    DEFERRED (no write lock; a rare write upgrades the lock and may get "database is
    locked" when another writer got there first — retry it on `engine`)."""
    return engine.execution_options(**{READ_ONLY_OPTION: True})


def is_lock_conflict(exc: BaseException) -> bool:
    """True for SQLite's "database is locked"/"busy" (another writer holds the lock)."""
    text = str(getattr(exc, "orig", None) or exc).lower()
    return "database is locked" in text or "database is busy" in text


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
