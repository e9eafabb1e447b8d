"""FastAPI dependencies: settings, one session per request, the Celery client, the caller.

Everything lives on `app.state`, built by the lifespan of `api.app.create_app`.

Thread hops: the session dependency and the bearer check are `async` — the session is
created without touching the database (it connects on first use, in the handler's
thread), and the token is checked in one thread hop with its own short transaction that
ends before the hop does. So no request holds a database connection (or, on SQLite, a
lock) while it waits for a thread; the handler's transaction ends in a thread of its own
that waits for no pool (see `_finish`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import anyio
from anyio import CancelScope
from celery import Celery
from fastapi import Depends, HTTPException, Path, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from api.throttle import throttled_authenticate
from common.settings import Settings
from store.db import is_lock_conflict, unit_of_work
from store.models import User

bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <token>`")


def get_settings(request: Request) -> Settings:
    """The settings this app was created with."""
    return request.app.state.settings


#: Methods whose requests only read: on SQLite their transactions take no write lock.
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def session_factory_for(request: Request) -> sessionmaker[Session]:
    """The read factory (SQLite: DEFERRED) for GET/HEAD, the write one otherwise."""
    state = request.app.state
    if request.method in READ_METHODS:
        return getattr(state, "read_session_factory", state.session_factory)
    return state.session_factory


def _end(session: Session, commit: bool) -> None:
    try:
        if commit:
            session.commit()
        else:
            session.rollback()
    finally:
        session.close()


async def _finish(session: Session, commit: bool) -> None:
    """Commit (or roll back) and close, in a thread of its own limiter: the transaction
    holds a connection, so it must not queue behind requests waiting for one."""
    with CancelScope(shield=True):
        await anyio.to_thread.run_sync(_end, session, commit, limiter=anyio.CapacityLimiter(1))


async def get_session(request: Request) -> AsyncIterator[Session]:
    """One session per request: committed when the handler returns (before the response is
    sent: see `SessionDep`), rolled back on error.

    Handlers that must make a write visible before a side effect (a wake-up) commit
    themselves first.
    """
    session = session_factory_for(request)()  # no connection yet: that comes on first use
    try:
        yield session
    except BaseException:
        await _finish(session, commit=False)
        raise
    await _finish(session, commit=True)


def get_celery(request: Request) -> Celery:
    """The Celery client (sends wake-ups only)."""
    return request.app.state.celery


#: Largest id a row can have (a PostgreSQL `integer`): a larger id in a path is a 422,
#: never a database error.
MAX_ID = 2**31 - 1
ExperimentId = Annotated[int, Path(ge=1, le=MAX_ID, description="Experiment id")]
SweepId = Annotated[int, Path(ge=1, le=MAX_ID, description="Sweep id")]

SettingsDep = Annotated[Settings, Depends(get_settings)]
#: `scope="function"`: the session is committed when the handler returns, BEFORE the
#: response is sent, so a client that acts on a 2xx (a GET right after a cancel, the page a
#: login redirects to) always finds the write. Streams open sessions of their own.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
CeleryDep = Annotated[Celery, Depends(get_celery)]


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail=message,
        headers={"WWW-Authenticate": "Bearer"},
    )


def _authenticate(request: Request, token: str) -> User | None:
    """The token's user, in one short transaction of its own (read-mostly; the rare
    `last_used_at` write that loses SQLite's lock race is redone as a write)."""
    state = request.app.state
    try:
        with unit_of_work(getattr(state, "read_session_factory", state.session_factory)) as s:
            return throttled_authenticate(request, s, token)
    except OperationalError as exc:
        if not is_lock_conflict(exc):
            raise
    with unit_of_work(state.session_factory) as session:
        return throttled_authenticate(request, session, token)


async def get_current_user(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> User:
    """The user of the request's bearer token; 401 when it is missing, unknown or revoked,
    429 (`Retry-After`) for a client with too many failed attempts (`api.throttle`)."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise _unauthorized("missing bearer token: send `Authorization: Bearer <token>`")
    user = await run_in_threadpool(_authenticate, request, credentials.credentials)
    if user is None:
        raise _unauthorized("invalid or revoked token")
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]
