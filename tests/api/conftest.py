"""Fixtures for the API tests: the real app (FastAPI TestClient) on a migrated database
(SQLite, then PostgreSQL) with a real Redis broker, and users with tokens."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from common.settings import Settings
from store import users
from store.db import make_engine, make_session_factory, unit_of_work

ADMIN_TOKEN = "test-admin-token-0123456789"


@pytest.fixture
def make_settings(migrated_url: str, redis_url: str, tmp_path) -> Callable[..., Settings]:
    """Settings for a test app; keyword arguments override any setting."""

    def build(**overrides) -> Settings:
        values = {
            "data_dir": tmp_path,
            "database_url": migrated_url,
            "broker_url": redis_url,
            "admin_token": ADMIN_TOKEN,
            **overrides,
        }
        return Settings(_env_file=None, **values)

    return build


@pytest.fixture
def make_client(make_settings) -> Iterator[Callable[..., TestClient]]:
    """Start an app (lifespan included) with setting overrides; stopped after the test."""
    clients: list[TestClient] = []

    def start(**overrides) -> TestClient:
        client = TestClient(create_app(make_settings(**overrides)))
        client.__enter__()
        clients.append(client)
        return client

    yield start
    for client in clients:
        _purge_wakeups(client)
        client.__exit__(None, None, None)


def _purge_wakeups(client: TestClient) -> None:
    """Empty the queues this test's submissions filled, so no later test (or worker) sees
    stale wake-ups. Tests run one at a time, so whatever waits there is ours."""
    # A test with a dead broker sent nothing.
    with contextlib.suppress(Exception), client.app.state.celery.connection_for_write() as conn:
        conn.default_channel.client.delete("cpu", "gpu")


@pytest.fixture
def client(make_client) -> TestClient:
    """The app with default settings."""
    return make_client()


@pytest.fixture
def admin() -> dict[str, str]:
    """Headers of the `admin` user (created at start-up from the settings' token)."""
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def session_factory(migrated_url: str):
    """Sessions on the test database, to arrange state the API does not write itself."""
    engine = make_engine(migrated_url)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def user_headers(session_factory) -> Callable[[str], dict[str, str]]:
    """Create a user (no admin rights) and return its Authorization header."""

    def create(name: str) -> dict[str, str]:
        with unit_of_work(session_factory) as s:
            _row, token = users.create_token(s, users.create_user(s, name))
        return {"Authorization": f"Bearer {token}"}

    return create


@pytest.fixture
def spec() -> dict:
    """A small valid experiment spec (a fresh dict per test)."""
    return {
        "dataset": "digits",
        "dataset_update": "increment",
        "splits": 2,
        "epochs": 2,
        "batch_size": 64,
    }
