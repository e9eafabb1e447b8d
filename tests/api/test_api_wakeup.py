"""A submission really puts one wake-up on the Redis queue of its device class."""

from __future__ import annotations

import base64
import json

import pytest


def _messages(celery, queue: str) -> list[bytes]:
    with celery.connection_for_write() as conn:
        return list(conn.default_channel.client.lrange(queue, 0, -1))


def _remove(celery, queue: str, raw: bytes) -> None:
    with celery.connection_for_write() as conn:
        conn.default_channel.client.lrem(queue, 0, raw)


@pytest.mark.parametrize(("device", "queue"), [("gpu", "gpu"), ("any", "cpu")])
def test_submit_sends_a_wakeup_to_the_queue(client, admin, spec, device, queue) -> None:
    celery = client.app.state.celery
    before = _messages(celery, queue)
    resp = client.post("/v1/experiments", json={**spec, "device": device}, headers=admin)
    assert resp.status_code == 201
    exp_id = resp.json()["id"]
    after = _messages(celery, queue)
    new = [m for m in after if m not in before]
    assert len(after) == len(before) + 1 and len(new) == 1
    message = json.loads(new[0])
    assert message["headers"]["task"] == "ewc.run_next"
    assert message["content-type"] == "application/json"
    args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
    assert args == [queue, exp_id]
    _remove(celery, queue, new[0])
