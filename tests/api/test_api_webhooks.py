"""`/v1/webhooks` over HTTP, and their deliveries to a real receiving HTTP server (made by
the workers' dispatcher, `worker.webhooks.dispatch_due`), on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from store.records import WebhookDelivery
from tests.harness.webhook_receiver import Receiver, verify
from worker.webhooks import dispatch_due


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def readme_verifier():
    """The `verified` function of README.md's Webhooks section, as a receiver copies it."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    [block] = [
        b for b in re.findall(r"```python\n(.*?)```", readme, re.DOTALL) if "def verified" in b
    ]
    namespace: dict = {}
    exec(block, namespace)  # noqa: S102 - our own README's example
    return namespace["verified"]


def drain(app, timeout_s: float = 30.0) -> None:
    """Run the dispatcher until no delivery is pending (retries due at once)."""
    state = app.state
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        dispatch_due(state.session_factory, state.settings)
        with state.session_factory() as s:
            if not s.execute(select(WebhookDelivery.id).where(
                    WebhookDelivery.status == "pending")).first():  # fmt: skip
                return
        time.sleep(0.01)
    raise AssertionError("deliveries still pending")


def add(client, headers, url: str, **body) -> dict:
    resp = client.post("/v1/webhooks", json={"url": url, **body}, headers=headers)
    assert resp.status_code == 201, resp.text
    return resp.json()


def test_the_secret_is_shown_once_and_hooks_are_private(client, user_headers, admin):
    ann, bob = user_headers("ann"), user_headers("bob")
    hook = add(client, ann, "https://example.org/hooks/ewc")
    assert hook["secret"].startswith("whsec_") and hook["owner"] == "ann"
    assert hook["events"] == ["experiment.finished", "sweep.finished"]
    assert hook["secret_prefix"] == hook["secret"][:10] + "…"
    [listed] = client.get("/v1/webhooks", headers=ann).json()["items"]
    assert "secret" not in listed and listed["secret_prefix"] == hook["secret_prefix"]
    assert "secret" not in client.get(f"/v1/webhooks/{hook['id']}", headers=ann).json()

    assert client.get("/v1/webhooks", headers=bob).json()["items"] == []
    for method, path in (("GET", ""), ("GET", "/deliveries"), ("POST", "/test"), ("DELETE", "")):
        resp = client.request(method, f"/v1/webhooks/{hook['id']}{path}", headers=bob)
        assert resp.status_code == 404, (method, path)
        assert "does not exist (or is not yours)" in resp.json()["detail"]
    assert client.get(f"/v1/webhooks/{hook['id']}/deliveries", headers=admin).status_code == 404
    assert client.get("/v1/webhooks?all=true", headers=bob).status_code == 403
    assert [
        h["id"] for h in client.get("/v1/webhooks?all=true", headers=admin).json()["items"]
    ] == [hook["id"]]
    assert client.delete(f"/v1/webhooks/{hook['id']}", headers=admin).status_code == 204
    assert client.get("/v1/webhooks", headers=ann).json()["items"] == []


BAD = [
    ({"url": "ftp://example.org/x"}, "url"),
    ({"url": "example.org/hook"}, "url"),
    ({"url": "http://"}, "url"),
    ({"url": "http://exa mple.org/"}, "url"),
    ({"url": "http://example.org/\u0000"}, "url"),
    ({"url": "https://" + "a" * 2000 + ".org/"}, "url"),
    ({"url": "http://example.org:port/"}, "url"),
    ({"url": "https://example.org/", "events": ["experiment.started"]}, "events.0"),
    ({"url": "https://example.org/", "events": []}, "events"),
    ({"url": "https://example.org/", "secret": "mine"}, "secret"),
]


def test_a_bad_webhook_is_a_422_naming_the_field(client, admin):
    for body, field in BAD:
        resp = client.post("/v1/webhooks", json=body, headers=admin)
        assert resp.status_code == 422, resp.text
        assert [p["field"] for p in resp.json()["detail"]] == [field], resp.text
    assert client.get("/v1/webhooks", headers=admin).json()["items"] == []


def test_a_ping_is_delivered_signed(client, user_headers, receiver):
    ann = user_headers("ann")
    hook = add(client, ann, receiver.url)
    queued = client.post(f"/v1/webhooks/{hook['id']}/test", headers=ann)
    assert queued.status_code == 202 and queued.json()["status"] == "pending"
    drain(client.app)
    [call] = receiver.received
    assert call.path == "/hooks/ewc" and verify(hook["secret"], call)
    assert call.headers["x-ewc-event"] == "ping"
    assert call.headers["x-ewc-delivery"] == str(queued.json()["id"])
    assert call.json["event"] == "ping" and call.json["webhook_id"] == hook["id"]
    assert not verify("whsec_someone-else", call)
    verified = readme_verifier()
    headers = {"X-EWC-Timestamp": call.headers["x-ewc-timestamp"],
               "X-EWC-Signature": call.headers["x-ewc-signature"]}  # fmt: skip
    assert verified(hook["secret"], headers, call.body)
    assert not verified(hook["secret"], headers, call.body.replace(b'"ping"', b'"pong"'))
    assert not verified(hook["secret"], headers, call.body, max_age_s=-1)  # a replay, later
    [d] = client.get(f"/v1/webhooks/{hook['id']}/deliveries", headers=ann).json()["items"]
    assert (d["status"], d["attempts"], d["last_status_code"]) == ("delivered", 1, 200)
    assert d["delivered_at"] and d["last_error"] is None


def test_a_500_is_retried_until_it_succeeds(make_client, user_headers, receiver):
    client = make_client(webhook_backoff_s=0.01)
    ann = user_headers("ann")
    receiver.statuses[:] = [500, 503]
    hook = add(client, ann, receiver.url)
    client.post(f"/v1/webhooks/{hook['id']}/test", headers=ann)
    drain(client.app)
    assert len(receiver.received) == 3
    assert len({c.headers["x-ewc-delivery"] for c in receiver.received}) == 1
    assert all(verify(hook["secret"], c) for c in receiver.received)
    [d] = client.get("/v1/webhooks/deliveries", headers=ann).json()["items"]
    assert (d["status"], d["attempts"], d["last_status_code"]) == ("delivered", 3, 200)


def test_a_receiver_that_keeps_failing_is_failed_after_the_last_attempt(
    make_client, user_headers, receiver
):
    client = make_client(webhook_backoff_s=0.01, webhook_max_attempts=3)
    ann = user_headers("ann")
    receiver.statuses[:] = [500, 302, 500, 200]
    hook = add(client, ann, receiver.url)
    client.post(f"/v1/webhooks/{hook['id']}/test", headers=ann)
    drain(client.app)
    assert len(receiver.received) == 3  # the redirect was not followed
    [d] = client.get(f"/v1/webhooks/{hook['id']}/deliveries", headers=ann).json()["items"]
    assert (d["status"], d["attempts"], d["last_status_code"]) == ("failed", 3, 500)
    assert d["last_error"] == "HTTP 500: receiver says no" and d["next_attempt_at"] is None


def test_an_unreachable_receiver_is_logged_with_the_error(make_client, user_headers):
    client = make_client(webhook_backoff_s=0.01, webhook_max_attempts=2)
    ann = user_headers("ann")
    hook = add(client, ann, "http://127.0.0.1:9/closed-port")
    client.post(f"/v1/webhooks/{hook['id']}/test", headers=ann)
    drain(client.app)
    [d] = client.get(f"/v1/webhooks/{hook['id']}/deliveries", headers=ann).json()["items"]
    assert (d["status"], d["attempts"], d["last_status_code"]) == ("failed", 2, None)
    assert d["last_error"].startswith("ConnectError")


def test_a_cancelled_experiment_is_reported_with_links(make_client, user_headers, spec, receiver):
    client = make_client(public_url="https://ewc.example.org/")
    ann = user_headers("ann")
    hook = add(client, ann, receiver.url, events=["experiment.finished"])
    exp = client.post("/v1/experiments", json={**spec, "name": "to-stop"}, headers=ann).json()
    assert client.post(f"/v1/experiments/{exp['id']}/cancel", headers=ann).status_code == 200
    drain(client.app)
    [call] = receiver.received
    assert verify(hook["secret"], call) and call.headers["x-ewc-event"] == "experiment.finished"
    body = call.json["experiment"]
    assert (body["id"], body["name"], body["status"]) == (exp["id"], "to-stop", "cancelled")
    assert body["url"] == f"https://ewc.example.org/v1/experiments/{exp['id']}"
    assert body["dashboard_url"] == f"https://ewc.example.org/ui/experiments/{exp['id']}"
    [d] = client.get("/v1/webhooks/deliveries", headers=ann).json()["items"]
    assert d["payload"]["experiment"]["url"] == body["url"]


def test_cancelling_a_sweep_sends_one_sweep_finished(client, user_headers, spec, receiver):
    ann = user_headers("ann")
    hook = add(client, ann, receiver.url, events=["sweep.finished"])
    sweep = client.post(
        "/v1/sweeps", json={"base": spec, "grid": {"seed": [0, 1, 2]}, "name": "s"}, headers=ann
    )
    assert sweep.status_code == 201, sweep.text
    sweep_id = sweep.json()["id"]
    assert client.post(f"/v1/sweeps/{sweep_id}/cancel", headers=ann).status_code == 200
    drain(client.app)
    [call] = receiver.received
    assert verify(hook["secret"], call) and call.headers["x-ewc-event"] == "sweep.finished"
    body = call.json["sweep"]
    assert (body["id"], body["name"], body["experiments"]) == (sweep_id, "s", 3)
    assert body["counts"]["cancelled"] == 3 and body["best"] is None
