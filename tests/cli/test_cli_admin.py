"""`ewc migrate`, `ewc users ...`, `ewc tokens ...` on a real database; the tokens they
print authenticate, revoked ones stop working, and mistakes exit 1 with a message."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from typer.testing import CliRunner

from cli.main import app
from common.settings import get_settings
from store import users
from store.db import make_engine, make_session_factory, unit_of_work
from store.migrate import head_revision


@pytest.fixture
def ewc(empty_url, tmp_path, monkeypatch) -> Iterator[Callable[..., tuple[int, str, str]]]:
    """Run `ewc ARGS` on the empty test database; returns (exit code, stdout, stderr)."""
    monkeypatch.setenv("EWC_DATABASE_URL", empty_url)
    monkeypatch.setenv("EWC_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    runner = CliRunner()

    def run(*args: str) -> tuple[int, str, str]:
        result = runner.invoke(app, list(args))
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result.exit_code, result.stdout, result.stderr

    yield run
    get_settings.cache_clear()


def _authenticate(url: str, token: str) -> str | None:
    engine = make_engine(url)
    try:
        with unit_of_work(make_session_factory(engine)) as s:
            user = users.authenticate(s, token)
            return user.name if user else None
    finally:
        engine.dispose()


def test_users_and_tokens_lifecycle(ewc, empty_url) -> None:
    code, _out, err = ewc("users", "create", "ann")
    assert code == 1 and "ewc migrate" in err  # not migrated yet: a hint, not a traceback

    code, out, _err = ewc("migrate")
    assert code == 0 and f"{head_revision()} (head)" in out
    assert ewc("migrate")[0] == 0  # idempotent

    code, out, err = ewc("users", "create", "ann")
    token = out.strip()
    assert code == 0 and token.startswith("ewc_") and "shown once" in err
    assert _authenticate(empty_url, token) == "ann"

    code, _out, err = ewc("users", "create", "ann")
    assert code == 1 and "already exists" in err

    code, out, _ = ewc("users", "create", "root", "--admin")
    assert code == 0
    code, out, _ = ewc("users", "list")
    assert code == 0 and "ann" in out and "root" in out and "yes" in out

    code, out, _ = ewc("tokens", "create", "ann")
    second = out.strip()
    assert code == 0 and second != token and _authenticate(empty_url, second) == "ann"
    assert ewc("tokens", "create", "nobody")[0] == 1

    code, out, _ = ewc("tokens", "list", "--user", "ann")
    assert code == 0 and out.count("ann") == 2 and token[:6] + "…" in out and token[:7] not in out

    assert ewc("tokens", "revoke", "1")[0] == 0
    assert _authenticate(empty_url, token) is None
    assert _authenticate(empty_url, second) == "ann"
    code, _out, err = ewc("tokens", "revoke", "99")
    assert code == 1 and "token 99 does not exist" in err
