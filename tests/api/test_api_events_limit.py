"""An event stream of a job that waits (perhaps for days) is closed after EWC_EVENTS_MAX_S;
the client reconnects with Last-Event-ID. (Found fuzzing: every such stream held a
connection until the client gave up.)"""

from __future__ import annotations

import time


def test_the_stream_of_a_queued_job_closes_after_events_max_s(make_client, admin, spec) -> None:
    client = make_client(events_max_s=0.5)
    exp_id = client.post("/v1/experiments", json=spec, headers=admin).json()["id"]
    started = time.monotonic()
    resp = client.get(f"/v1/experiments/{exp_id}/events", headers=admin)
    assert resp.status_code == 200
    assert "event: status" in resp.text and '"status":"queued"' in resp.text
    assert "event: end" not in resp.text  # closed for the time limit, not because it ended
    assert time.monotonic() - started < 60  # 0.5 s limit; generous for a loaded machine
