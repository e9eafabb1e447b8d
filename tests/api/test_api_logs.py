"""`GET /v1/experiments/{id}/logs`: JSON pages after a cursor, the log as text, the lines as
server-sent events while the job runs, the errors; and a real failing job's traceback read
back through the API (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import update

from store import claims, logs
from store.db import unit_of_work
from store.logs import END_LEVEL, LogLine
from store.models import Experiment, JobStatus, utcnow
from tests.fixtures.events import parse_sse


def write(factory, exp: int, *texts: str, attempt: int = 1, level: str = "INFO") -> None:
    with unit_of_work(factory) as s:
        logs.append_lines(s, exp, attempt, [LogLine(level, t, utcnow()) for t in texts])


def finish(factory, exp: int, status: JobStatus = JobStatus.failed) -> None:
    with unit_of_work(factory) as s:
        s.execute(update(Experiment).where(Experiment.id == exp)
                  .values(status=status, finished_at=utcnow()))  # fmt: skip


def test_pages_after_a_cursor_and_finished_once_the_log_is_complete(
    api, admin_id, make_experiment, session_factory
):
    exp = make_experiment(admin_id, status=JobStatus.running, attempts=1)
    write(session_factory, exp, "ewc.worker event=job_start", "second", "third")
    page = api.get(f"/v1/experiments/{exp}/logs").json()
    assert [(x["attempt"], x["level"], x["message"]) for x in page["lines"]] == [
        (1, "INFO", "ewc.worker event=job_start"), (1, "INFO", "second"), (1, "INFO", "third"),
    ]  # fmt: skip
    assert page["next_after"] == page["lines"][-1]["id"] and page["finished"] is False
    assert page["lines"][0]["time"].endswith(("Z", "+00:00"))
    first = page["lines"][0]["id"]
    two = api.get(f"/v1/experiments/{exp}/logs", params={"after": first, "limit": 1}).json()
    assert [x["message"] for x in two["lines"]] == ["second"] and not two["finished"]
    finish(session_factory, exp)
    assert not api.get(f"/v1/experiments/{exp}/logs").json()["finished"], "END not written yet"
    write(session_factory, exp, "attempt 1 ended on w1: failed", level=END_LEVEL)
    last = api.get(f"/v1/experiments/{exp}/logs", params={"after": page["next_after"]}).json()
    assert [x["level"] for x in last["lines"]] == ["END"] and last["finished"] is True
    full = api.get(f"/v1/experiments/{exp}/logs", params={"limit": 2}).json()
    assert full["finished"] is False, "more lines wait after a full page"
    empty = api.get(f"/v1/experiments/{exp}/logs", params={"after": last["next_after"]}).json()
    assert empty == {"lines": [], "next_after": last["next_after"], "finished": True}


def test_the_log_as_text(api, admin_id, make_experiment, session_factory):
    exp = make_experiment(admin_id)
    write(session_factory, exp, "one", "Traceback (most recent call last):\n  File x\nValueError")
    r = api.get(f"/v1/experiments/{exp}/logs", params={"format": "text"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert f'filename="experiment-{exp}.log"' in r.headers["content-disposition"]
    lines = r.text.splitlines()
    assert lines[0].endswith(" INFO [attempt 1] one") and lines[0][:4].isdigit()
    assert lines[-1] == "ValueError" and len(lines) == 4


def test_following_streams_lines_as_they_are_stored_until_the_job_ends(
    api, admin_id, make_experiment, session_factory
):
    exp = make_experiment(admin_id, status=JobStatus.running, attempts=1)
    write(session_factory, exp, "before")
    ready = threading.Event()

    def worker() -> None:
        ready.wait(10)
        for i in range(3):
            time.sleep(0.1)
            write(session_factory, exp, f"line {i}")
        finish(session_factory, exp, JobStatus.succeeded)
        time.sleep(0.2)
        write(session_factory, exp, "attempt 1 ended", level=END_LEVEL)

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        with api.stream("GET", f"/v1/experiments/{exp}/logs", params={"follow": "true"}) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            ready.set()
            body = "".join(r.iter_text())
    finally:
        ready.set()
        thread.join(10)
    events = parse_sse(body)
    assert [(k, d.get("message", d.get("status"))) for k, _, d in events] == [
        ("line", "before"), ("line", "line 0"), ("line", "line 1"), ("line", "line 2"),
        ("line", "attempt 1 ended"), ("end", "succeeded"),
    ]  # fmt: skip
    assert [i for _, i, _ in events[:-1]] == [str(d["id"]) for _, _, d in events[:-1]]
    # Resumed after the third line (Last-Event-ID), asked by the Accept header alone.
    resumed = parse_sse(api.get(f"/v1/experiments/{exp}/logs", headers={
        "Accept": "text/event-stream", "Last-Event-ID": events[2][1]}).text)  # fmt: skip
    assert [d.get("message") for _, _, d in resumed] == ["line 2", "attempt 1 ended", None]


def test_log_errors(api, admin_id, make_experiment, user_headers):
    exp = make_experiment(admin_id)
    assert api.get("/v1/experiments/999/logs").status_code == 404
    assert api.get(f"/v1/experiments/{exp}/logs", headers={"Authorization": ""}).status_code == 401
    # Another user reads it as they read the experiment.
    assert api.get(f"/v1/experiments/{exp}/logs", headers=user_headers("bob")).status_code == 200
    for params, field in [({"after": -1}, "after"), ({"limit": 0}, "limit"),
                          ({"limit": 10**6}, "limit"), ({"format": "xml"}, "format"),
                          ({"format": "text", "follow": "true"}, "format")]:  # fmt: skip
        r = api.get(f"/v1/experiments/{exp}/logs", params=params)
        assert r.status_code == 422, params
        assert [p["field"] for p in r.json()["detail"]] == [field], r.json()


def test_the_operation_is_documented(api):
    doc = api.get("/openapi.json").json()
    op = doc["paths"]["/v1/experiments/{experiment_id}/logs"]["get"]
    assert op["operationId"] == "get_logs" and op["tags"] == ["logs"]
    content = op["responses"]["200"]["content"]
    assert set(content) == {"application/json", "text/plain", "text/event-stream"}
    assert content["application/json"]["schema"]["$ref"].endswith("/LogPage")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_real_failing_jobs_traceback_is_read_back_through_the_api(
    api, admin_id, make_experiment, session_factory, app_settings, tmp_path: Path
):
    from worker.runner import checkpoint_dir, run_job

    spec = {"dataset": "digits", "model": "mlp", "dataset_update": "permute", "splits": 2,
            "epochs": 2, "seed": 0}  # fmt: skip
    exp = make_experiment(admin_id, spec=spec, status=JobStatus.queued, queue="cpu")
    settings = app_settings.model_copy(update={"dataset_cache": tmp_path / "datasets"})
    stale = checkpoint_dir(settings, exp) / "task-1"  # another experiment's checkpoint
    stale.mkdir(parents=True)
    (stale / "history.json").write_text('{"task": 1, "spec": {"dataset": "mnist"}}')
    np.savez(stale / "state.npz", x=np.zeros(1))
    with unit_of_work(session_factory) as s:
        job = claims.claim_next_job(s, ["cpu"], "host-b:1:ab", 30, 3)
    assert job is not None and job.id == exp
    run_job(job, worker="host-b:1:ab", settings=settings, sessions=session_factory, device="CPU")
    got = api.get(f"/v1/experiments/{exp}").json()
    assert got["status"] == "failed" and "\n" not in got["error"]
    page = api.get(f"/v1/experiments/{exp}/logs").json()
    assert page["finished"] is True
    errors = [x["message"] for x in page["lines"] if x["level"] == "ERROR"]
    assert len(errors) == 1 and "Traceback (most recent call last)" in errors[0]
    assert errors[0].splitlines()[-1].startswith("continual_core.checkpoint.CheckpointMismatch")
    assert page["lines"][-1]["message"] == f"attempt 1 ended on host-b:1:ab: failed: {got['error']}"
    text = api.get(f"/v1/experiments/{exp}/logs", params={"format": "text"}).text
    assert "Traceback (most recent call last)" in text
