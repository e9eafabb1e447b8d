"""The dashboard's browser sessions: server-side, revocable, expiring logins.

Logging in with an API token opens a session: the browser's cookie holds a random session
id (256 bits), the database only its SHA-256 hash, with the session's form token (CSRF)
and its expiry. A session ends when it is logged out (its row is deleted), when it expires,
or when the token it was opened with is revoked. Functions take a Session, flush, and never
commit: the caller's unit of work does.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, joinedload

from store.models import ApiToken, BrowserSession, utcnow
from store.users import hash_token


def new_secret() -> str:
    """A fresh random value for a session id or a form token (43 URL-safe characters)."""
    return secrets.token_urlsafe(32)


def open_session(session: Session, token: str, ttl: timedelta) -> tuple[BrowserSession, str] | None:
    """A new session for the user of the live API token `token`: (row, session id), or None
    when the token is unknown or revoked. The plain session id is returned this once."""
    if not token:
        return None
    api_token = session.scalar(
        select(ApiToken).where(
            ApiToken.token_hash == hash_token(token), ApiToken.revoked_at.is_(None)
        )
    )
    if api_token is None:
        return None
    purge_expired(session)
    session_id = new_secret()
    now = utcnow()
    row = BrowserSession(
        session_hash=hash_token(session_id),
        user_id=api_token.user_id,
        token_id=api_token.id,
        csrf_token=new_secret(),
        created_at=now,
        expires_at=now + ttl,
    )
    session.add(row)
    session.flush()
    return row, session_id


def get_session(session: Session, session_id: str) -> BrowserSession | None:
    """The live session of `session_id` (not expired, its token not revoked), with its user
    loaded; None otherwise. Reads only."""
    if not session_id:
        return None
    return session.scalar(
        select(BrowserSession)
        .options(joinedload(BrowserSession.user))
        .join(ApiToken, ApiToken.id == BrowserSession.token_id)
        .where(
            BrowserSession.session_hash == hash_token(session_id),
            BrowserSession.expires_at > utcnow(),
            ApiToken.revoked_at.is_(None),
        )
    )


def end_session(session: Session, session_id: str) -> bool:
    """End (delete) the session of `session_id`; False when there was none."""
    if not session_id:
        return False
    result = session.execute(
        delete(BrowserSession).where(BrowserSession.session_hash == hash_token(session_id))
    )
    session.flush()
    return bool(result.rowcount)


def end_user_sessions(session: Session, user_id: int) -> int:
    """End every session of a user; the number ended."""
    result = session.execute(delete(BrowserSession).where(BrowserSession.user_id == user_id))
    session.flush()
    return int(result.rowcount or 0)


def purge_expired(session: Session) -> int:
    """Delete sessions past their expiry; the number deleted."""
    result = session.execute(delete(BrowserSession).where(BrowserSession.expires_at <= utcnow()))
    return int(result.rowcount or 0)
