"""Issue 8 §5: the admin token from the settings is *replaced* when the setting changes
(the previous one stops working), tokens made by hand are left alone, a stored prefix is
at most 6 characters, and user names are text every backend stores alike."""

from __future__ import annotations

import pytest

from store import users
from store.db import unit_of_work

OLD = "old-admin-token-0123456789abcdef"
NEW = "new-admin-token-0123456789abcdef"


def test_changing_the_admin_token_revokes_the_previous_one(session_factory) -> None:
    with unit_of_work(session_factory) as s:
        users.ensure_admin(s, "admin", OLD)
        _row, by_hand = users.create_token(s, users.get_user(s, "admin"))  # `ewc tokens create`
    with unit_of_work(session_factory) as s:
        users.ensure_admin(s, "admin", NEW)  # EWC_ADMIN_TOKEN changed, service restarted
    with unit_of_work(session_factory) as s:
        assert users.authenticate(s, OLD) is None
        assert users.authenticate(s, NEW).name == "admin"
        assert users.authenticate(s, by_hand).name == "admin"
        managed = [t for t in users.list_tokens(s) if users.is_managed(t)]
        assert [(t.revoked_at is None) for t in managed] == [False, True]
    # Setting the old one again does not bring it back (revoking is deliberate).
    with unit_of_work(session_factory) as s:
        users.ensure_admin(s, "admin", OLD)
    with unit_of_work(session_factory) as s:
        assert users.authenticate(s, OLD) is None
        assert users.authenticate(s, NEW) is None  # replaced in turn


def test_restarting_with_the_same_token_keeps_it(session_factory) -> None:
    for _ in range(3):
        with unit_of_work(session_factory) as s:
            users.ensure_admin(s, "admin", NEW)
    with unit_of_work(session_factory) as s:
        assert users.authenticate(s, NEW).name == "admin"
        assert len(users.list_tokens(s)) == 1


def test_a_token_from_an_older_version_is_adopted_then_replaced(session_factory) -> None:
    # Before this version the settings' token was stored unmarked, like any other.
    with unit_of_work(session_factory) as s:
        admin = users.create_user(s, "admin", is_admin=True)
        users._add_token(s, admin, OLD)
    with unit_of_work(session_factory) as s:
        users.ensure_admin(s, "admin", OLD)  # first start of this version: marks it
    with unit_of_work(session_factory) as s:
        users.ensure_admin(s, "admin", NEW)
    with unit_of_work(session_factory) as s:
        assert users.authenticate(s, OLD) is None
        assert users.authenticate(s, NEW) is not None


def test_stored_and_shown_prefixes_are_at_most_6_characters(session_factory) -> None:
    with unit_of_work(session_factory) as s:
        users.ensure_admin(s, "admin", NEW)
        _row, token = users.create_token(s, users.create_user(s, "ann"))
    with unit_of_work(session_factory) as s:
        shown = {t.user.name: users.shown_prefix(t) for t in users.list_tokens(s)}
    assert shown == {"admin": NEW[:6] + "…", "ann": token[:6] + "…"}


@pytest.mark.parametrize("name", ["a\x00b", "tab\there", "new\nline", "x" * 65, "\ud800"])
def test_user_names_must_be_storable_text(session_factory, name) -> None:
    with unit_of_work(session_factory) as s, pytest.raises(ValueError, match="user name"):
        users.create_user(s, name)
