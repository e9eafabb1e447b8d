"""FastAPI dependencies: settings, one session per request, the Celery client, the caller.

Everything lives on `app.state`, built by the lifespan of `api.app.create_app`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from celery import Celery
from fastapi import Depends, HTTPException, Path, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from ewc.settings import Settings
from store import users
from store.db import unit_of_work
from store.models import User

bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <token>`")


def get_settings(request: Request) -> Settings:
    """The settings this app was created with."""
    return request.app.state.settings


def get_session(request: Request) -> Iterator[Session]:
    """One session per request: committed when the handler returns, rolled back on error.

    Handlers that must make a write visible before a side effect (a wake-up) commit
    themselves first.
    """
    with unit_of_work(request.app.state.session_factory) as session:
        yield session


def get_celery(request: Request) -> Celery:
    """The Celery client (sends wake-ups only)."""
    return request.app.state.celery


#: Largest id a row can have (a PostgreSQL `integer`): a larger id in a path is a 422,
#: never a database error.
MAX_ID = 2**31 - 1
ExperimentId = Annotated[int, Path(ge=1, le=MAX_ID, description="Experiment id")]
SweepId = Annotated[int, Path(ge=1, le=MAX_ID, description="Sweep id")]

SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
CeleryDep = Annotated[Celery, Depends(get_celery)]


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail=message,
        headers={"WWW-Authenticate": "Bearer"},
    )


def get_current_user(
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> User:
    """The user of the request's bearer token; 401 when it is missing, unknown or revoked."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise _unauthorized("missing bearer token: send `Authorization: Bearer <token>`")
    user = users.authenticate(session, credentials.credentials)
    if user is None:
        raise _unauthorized("invalid or revoked token")
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]
