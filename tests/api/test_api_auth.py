"""Every /v1 route needs a live bearer token; cancelling needs ownership or admin rights."""

from __future__ import annotations

import pytest

from store import users
from store.db import unit_of_work

V1_ROUTES = [
    ("GET", "/v1/experiments"),
    ("POST", "/v1/experiments"),
    ("GET", "/v1/experiments/1"),
    ("GET", "/v1/experiments/1/metrics"),
    ("POST", "/v1/experiments/1/cancel"),
    ("GET", "/v1/queues"),
]


def _assert_401(resp) -> None:
    assert resp.status_code == 401, resp.text
    assert resp.headers["www-authenticate"] == "Bearer"
    assert resp.json()["detail"]


@pytest.mark.parametrize(("method", "path"), V1_ROUTES)
def test_missing_or_wrong_token_is_401(client, method, path) -> None:
    _assert_401(client.request(method, path))
    _assert_401(client.request(method, path, headers={"Authorization": "Bearer nope"}))
    _assert_401(client.request(method, path, headers={"Authorization": "Basic YTpi"}))


def test_revoked_token_is_401(client, session_factory, spec) -> None:
    with unit_of_work(session_factory) as s:
        row, token = users.create_token(s, users.create_user(s, "ann"))
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/v1/experiments", headers=headers).status_code == 200
    with unit_of_work(session_factory) as s:
        users.revoke_token(s, row.id)
    _assert_401(client.get("/v1/experiments", headers=headers))


def test_admin_token_from_settings_works(client, admin) -> None:
    assert client.get("/v1/experiments", headers=admin).status_code == 200


def test_only_owner_or_admin_may_cancel(client, user_headers, admin, spec) -> None:
    ann, bob = user_headers("ann"), user_headers("bob")
    first = client.post("/v1/experiments", json=spec, headers=ann).json()["id"]
    second = client.post("/v1/experiments", json=spec, headers=ann).json()["id"]

    resp = client.post(f"/v1/experiments/{first}/cancel", headers=bob)
    assert resp.status_code == 403 and "only its owner or an admin" in resp.json()["detail"]
    assert client.get(f"/v1/experiments/{first}", headers=bob).json()["status"] == "queued"

    assert client.post(f"/v1/experiments/{first}/cancel", headers=ann).status_code == 200
    resp = client.post(f"/v1/experiments/{second}/cancel", headers=admin)
    assert resp.status_code == 200 and resp.json()["status"] == "cancelled"


def test_health_and_docs_need_no_token(client) -> None:
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"):
        assert client.get(path).status_code == 200, path
