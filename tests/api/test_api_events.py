"""Server-sent events: new rows arrive in order while a job runs, and the stream ends with it."""

from __future__ import annotations

import threading

from tests.fixtures.events import parse_sse, run_fake_job


def test_events_arrive_in_order_and_the_stream_ends(api, admin_id, make_experiment, session_factory):
    from store.models import JobStatus as S

    exp = make_experiment(admin_id, status=S.queued, num_tasks=2, total_epochs=4)
    ready = threading.Event()
    writer = threading.Thread(target=run_fake_job, args=(session_factory, exp, ready))
    writer.start()
    try:
        with api.stream("GET", f"/v1/experiments/{exp}/events") as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            ready.set()
            body = "".join(r.iter_text())
    finally:
        ready.set()
        writer.join(10)
    events = parse_sse(body)
    kinds = [(k, d.get("epoch") or d.get("task") or d.get("status")) for k, _, d in events]
    assert kinds == [
        ("status", "queued"), ("status", "running"),
        ("epoch", 1), ("epoch", 2), ("task", 1), ("epoch", 3), ("epoch", 4), ("task", 2),
        ("status", "succeeded"), ("end", "succeeded"),
    ]
    assert events[2][2]["val_accuracy"] == [0.5, 0.1]
    assert events[-1][2]["summary"]["average_accuracy"] == 0.5
    assert events[-1][1] == "4.2", "the last id says what was seen: epoch 4, task 2"


def test_a_finished_job_replays_and_resumes_after_last_event_id(api, admin_id, make_experiment):
    from tests.fixtures.dashboard import sample_result

    exp = make_experiment(admin_id, result=sample_result(2, 2))
    events = parse_sse(api.get(f"/v1/experiments/{exp}/events").text)
    assert [k for k, _, _ in events] == ["epoch", "epoch", "task", "epoch", "epoch", "task",
                                        "status", "end"]
    resumed = parse_sse(
        api.get(f"/v1/experiments/{exp}/events", headers={"Last-Event-ID": "3.1"}).text
    )
    assert [(k, d.get("epoch") or d.get("task")) for k, _, d in resumed][:2] == [("epoch", 4), ("task", 2)]
    assert resumed[-1][0] == "end"


def test_events_errors(api):
    assert api.get("/v1/experiments/999/events").status_code == 404
    assert api.get("/v1/experiments/999/events", headers={"Authorization": ""}).status_code == 401
