"""Server-sent events: new rows arrive in order while a job runs, and the stream ends with it."""

from __future__ import annotations

import json
import threading
import time

from sqlalchemy import update

from store.db import unit_of_work
from store.models import EpochMetric, Experiment, JobStatus, TaskResult


def parse_sse(text: str) -> list[tuple[str, str | None, dict]]:
    """(event, id, data) of every message of an SSE body (comments and retry skipped)."""
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if not line.startswith((":", "retry"))
        )
        if "event" in fields:
            events.append((fields["event"], fields.get("id"), json.loads(fields["data"])))
    return events


def run_fake_job(factory, exp_id: int, ready: threading.Event) -> None:
    """Write what a worker writes for a 2-task, 4-epoch job, slowly, then finish it."""
    ready.wait(10)
    time.sleep(0.2)
    with unit_of_work(factory) as s:
        s.execute(update(Experiment).where(Experiment.id == exp_id).values(status=JobStatus.running))
    epoch = 0
    for task in (1, 2):
        for task_epoch in (1, 2):
            epoch += 1
            time.sleep(0.1)
            with unit_of_work(factory) as s:
                s.add(EpochMetric(experiment_id=exp_id, task=task, epoch=epoch, task_epoch=task_epoch,
                                  loss=1.0 / epoch, val_accuracy=[0.5, 0.1], train_s=0.1, eval_s=0.0))
        with unit_of_work(factory) as s:
            s.add(TaskResult(experiment_id=exp_id, task=task, test_accuracy=[0.9, 0.1 * task]))
    with unit_of_work(factory) as s:
        s.execute(update(Experiment).where(Experiment.id == exp_id).values(
            status=JobStatus.succeeded, summary={"average_accuracy": 0.5, "bwt": 0, "forgetting": 0}))


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
    from tests.dashboard.conftest import sample_result

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
