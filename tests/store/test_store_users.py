"""Users and tokens: hashes only, revocation, last-use stamping, the admin at start-up."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from store import users
from store.db import unit_of_work
from store.errors import TokenNotFound, UserExists, UserNotFound
from store.models import ApiToken, utcnow


def test_token_is_stored_as_hash_and_authenticates(session_factory) -> None:
    with unit_of_work(session_factory) as s:
        ann = users.create_user(s, "ann")
        _row, token = users.create_token(s, ann)
    assert token.startswith("ewc_") and len(token) > 40
    with unit_of_work(session_factory) as s:
        stored = s.scalar(select(ApiToken))
        assert stored.token_hash == users.hash_token(token) != token
        assert stored.prefix == token[:6]  # too few characters to help guess it
        assert users.authenticate(s, token).name == "ann"
        assert users.authenticate(s, token + "x") is None
        assert users.authenticate(s, "") is None


def test_revoked_token_no_longer_authenticates(session_factory) -> None:
    with unit_of_work(session_factory) as s:
        row, token = users.create_token(s, users.create_user(s, "ann"))
    with unit_of_work(session_factory) as s:
        first = users.revoke_token(s, row.id).revoked_at
        assert users.revoke_token(s, row.id).revoked_at == first  # idempotent
    with unit_of_work(session_factory) as s:
        assert users.authenticate(s, token) is None
        with pytest.raises(TokenNotFound, match="ewc tokens list"):
            users.revoke_token(s, 999)


def test_last_used_is_written_at_most_once_a_minute(session_factory) -> None:
    with unit_of_work(session_factory) as s:
        row, token = users.create_token(s, users.create_user(s, "ann"))
    with unit_of_work(session_factory) as s:
        users.authenticate(s, token)
    with unit_of_work(session_factory) as s:
        first = s.get(ApiToken, row.id).last_used_at
        assert first is not None and utcnow() - first < timedelta(seconds=30)
        users.authenticate(s, token)
    with unit_of_work(session_factory) as s:
        assert s.get(ApiToken, row.id).last_used_at == first  # not rewritten within a minute
        s.get(ApiToken, row.id).last_used_at = first - timedelta(minutes=5)
    with unit_of_work(session_factory) as s:
        users.authenticate(s, token)
    with unit_of_work(session_factory) as s:
        assert s.get(ApiToken, row.id).last_used_at > first - timedelta(minutes=1)


def test_duplicate_user_name_is_a_typed_error(session_factory) -> None:
    with unit_of_work(session_factory) as s:
        users.create_user(s, "ann")
    with unit_of_work(session_factory) as s, pytest.raises(UserExists, match="'ann'"):
        users.create_user(s, "ann")
    with unit_of_work(session_factory) as s, pytest.raises(UserNotFound):
        users.get_user(s, "bob")


def test_list_tokens_by_user(session_factory) -> None:
    with unit_of_work(session_factory) as s:
        ann, bob = users.create_user(s, "ann"), users.create_user(s, "bob")
        users.create_token(s, ann)
        users.create_token(s, ann)
        users.create_token(s, bob)
    with unit_of_work(session_factory) as s:
        assert len(users.list_tokens(s)) == 3
        assert [t.user.name for t in users.list_tokens(s, users.get_user(s, "bob"))] == ["bob"]
        assert [u.name for u in users.list_users(s)] == ["ann", "bob"]


def test_ensure_admin_is_idempotent(session_factory) -> None:
    for _ in range(2):
        with unit_of_work(session_factory) as s:
            users.ensure_admin(s, "admin", "the-admin-token")
    with unit_of_work(session_factory) as s:
        admin = users.authenticate(s, "the-admin-token")
        assert admin is not None and admin.is_admin and admin.name == "admin"
        assert len(users.list_tokens(s)) == 1


def test_ensure_admin_refuses_another_users_token(session_factory) -> None:
    with unit_of_work(session_factory) as s:
        _row, token = users.create_token(s, users.create_user(s, "ann"))
    with unit_of_work(session_factory) as s, pytest.raises(ValueError, match="another user"):
        users.ensure_admin(s, "admin", token)
