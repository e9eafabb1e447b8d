"""Users and their bearer tokens.

A token is shown in plain text once, when it is created; the database keeps only its
SHA-256 hex digest and its first 6 characters (to recognise it in a list; too few to help
anyone guess it). Functions take a Session, flush, and never commit: the caller's unit of
work does.

The admin token from the settings (`EWC_ADMIN_TOKEN`, or the one `ewc up` keeps in
`<data_dir>/admin-token`) is *managed*: its stored prefix carries `MANAGED_MARK`, and when
the setting changes, `ensure_admin` revokes the previous managed token, so exactly one is
valid. Tokens made with `ewc users create` / `ewc tokens create` are never touched.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from store.errors import TokenNotFound, UserExists, UserNotFound
from store.models import ApiToken, User, utcnow

#: Every token starts with this, so a leaked one is easy to grep for.
TOKEN_PREFIX = "ewc_"
#: `last_used_at` is written at most this often per token (one UPDATE per minute, not per call).
LAST_USED_RESOLUTION = timedelta(minutes=1)
#: Characters of a token kept (and shown) to recognise it.
PREFIX_CHARS = 6
#: Marks the stored prefix of the token managed from the settings (see `ensure_admin`).
MANAGED_MARK = "env:"


def hash_token(token: str) -> str:
    """The SHA-256 hex digest under which `token` is stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token_text() -> str:
    """A fresh random token: `ewc_` + 43 URL-safe characters (256 bits)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def get_user(session: Session, name: str) -> User:
    """The user called `name`; raises UserNotFound."""
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        raise UserNotFound(name)
    return user


def user_name(session: Session, user_id: int) -> str:
    """The name of the user with id `user_id` (the id as text if that user is gone)."""
    user = session.get(User, user_id)
    return user.name if user else str(user_id)


def create_user(session: Session, name: str, *, is_admin: bool = False) -> User:
    """A new user; raises UserExists if the name is taken."""
    name = name.strip()
    if not name:
        raise ValueError("a user name cannot be empty")
    if any(ord(c) < 32 or ord(c) == 127 or 0xD800 <= ord(c) <= 0xDFFF for c in name):
        raise ValueError("a user name cannot contain NUL, control characters or lone surrogates")
    if len(name) > 64:
        raise ValueError(f"a user name has at most 64 characters, not {len(name)}")
    if session.scalar(select(User.id).where(User.name == name)) is not None:
        raise UserExists(name)
    user = User(name=name, is_admin=is_admin, created_at=utcnow())
    try:
        with session.begin_nested():
            session.add(user)
            session.flush()
    except IntegrityError as exc:  # created by someone else between the check and the insert
        raise UserExists(name) from exc
    return user


def list_users(session: Session) -> list[User]:
    """Every user, oldest first."""
    return list(session.scalars(select(User).order_by(User.id)))


def _add_token(session: Session, user: User, token: str, *, managed: bool = False) -> ApiToken:
    row = ApiToken(
        user_id=user.id,
        token_hash=hash_token(token),
        prefix=(MANAGED_MARK if managed else "") + token[:PREFIX_CHARS],
        created_at=utcnow(),
    )
    session.add(row)
    session.flush()
    return row


def create_token(session: Session, user: User) -> tuple[ApiToken, str]:
    """A new token for `user`: (the stored row, the plain-text token).

    The plain text is returned this once and stored nowhere.
    """
    token = new_token_text()
    return _add_token(session, user, token), token


def authenticate(session: Session, token: str) -> User | None:
    """The user a live (not revoked) token belongs to, or None.

    Records the use in `last_used_at`, at most once per minute per token.
    """
    if not token:
        return None
    row = session.scalar(
        select(ApiToken)
        .options(joinedload(ApiToken.user))
        .where(ApiToken.token_hash == hash_token(token), ApiToken.revoked_at.is_(None))
    )
    if row is None:
        return None
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
        row.last_used_at = now
        session.flush()
    return row.user


def is_managed(row: ApiToken) -> bool:
    """Whether `row` is the admin token managed from the settings (EWC_ADMIN_TOKEN)."""
    return row.prefix.startswith(MANAGED_MARK)


def shown_prefix(row: ApiToken) -> str:
    """The first characters of a token as a list shows them (at most `PREFIX_CHARS`;
    rows from older versions kept 12), followed by "…"."""
    return row.prefix.removeprefix(MANAGED_MARK)[:PREFIX_CHARS] + "…"


def list_tokens(session: Session, user: User | None = None) -> list[ApiToken]:
    """Tokens (revoked ones too), oldest first; only `user`'s when given. Users are loaded."""
    query = select(ApiToken).options(joinedload(ApiToken.user)).order_by(ApiToken.id)
    if user is not None:
        query = query.where(ApiToken.user_id == user.id)
    return list(session.scalars(query))


def revoke_token(session: Session, token_id: int) -> ApiToken:
    """Revoke a token by id (idempotent: an already revoked one keeps its first date).

    Raises TokenNotFound.
    """
    row = session.get(ApiToken, token_id)
    if row is None:
        raise TokenNotFound(token_id)
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.flush()
    return row


def ensure_admin(session: Session, name: str, token: str) -> User:
    """Make sure an admin user `name` exists and that `token` is its managed token.

    Used at start-up with the settings' admin token; safe to run from several processes.
    The token replaces the previously managed one (revoked now), so changing the
    setting leaves only the new token valid. A token that was revoked stays revoked
    (revoking is deliberate; set a new token). Raises ValueError if the token already
    belongs to another user.
    """
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        try:
            user = create_user(session, name, is_admin=True)
        except UserExists:
            user = get_user(session, name)
    if not user.is_admin:
        user.is_admin = True
    digest = hash_token(token)
    existing = session.scalar(select(ApiToken).where(ApiToken.token_hash == digest))
    if existing is None:
        try:
            with session.begin_nested():
                _add_token(session, user, token, managed=True)
        except IntegrityError:  # another process added it at the same moment
            pass
    elif existing.user_id != user.id:
        raise ValueError(
            f"the admin token is already the token of another user (id {existing.user_id}); "
            "set a different EWC_ADMIN_TOKEN"
        )
    elif not is_managed(existing):  # made by an older version, or by `ewc tokens create`
        existing.prefix = MANAGED_MARK + token[:PREFIX_CHARS]
    now = utcnow()
    for row in session.scalars(
        select(ApiToken).where(
            ApiToken.user_id == user.id,
            ApiToken.token_hash != digest,
            ApiToken.prefix.startswith(MANAGED_MARK, autoescape=True),
            ApiToken.revoked_at.is_(None),
        )
    ):
        row.revoked_at = now  # the previous EWC_ADMIN_TOKEN: replaced, not added to
    session.flush()
    return user
