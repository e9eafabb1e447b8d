"""Fault (c): the database stops while a job runs, then comes back.

Real processes: an API (uvicorn), an `ewc worker`, a private redis-server and a private
PostgreSQL cluster (`initdb` + `pg_ctl`; the machine's own server is never touched). While
the database is down: `/readyz` says 503 naming it, writes and reads of `/v1` get a 503
with a clear message, `/healthz` and `/metrics` still answer, and no process dies (the
worker's writer thread retries its metric writes while training goes on, and training
waits at the task's end, or once 64 events wait, until they are written). Once it is started again,
everything carries on: the running job finishes with every epoch row (same attempt), and
a new submission runs.
"""

from __future__ import annotations

import time

import httpx
import pytest

from store.migrate import upgrade
from tests.harness.experiments import submit, token_for, two_tasks, wait_for_status
from tests.harness.processes import service_env, start_api, start_workers

pytestmark = [pytest.mark.faults, pytest.mark.slow]

SPEC = two_tasks(epochs=30)
#: How long the database stays down (seconds).
OUTAGE_S = 6


def test_a_stopped_database_gives_503s_kills_nothing_and_everything_resumes(
    tmp_path, private_postgres, private_redis, processes, say
):
    db_url = private_postgres.create_database("ewc")
    upgrade(db_url)
    # A heartbeat timeout longer than the outage: the job is not taken for dead meanwhile.
    env = service_env(
        db_url, private_redis.url, tmp_path / "data", fast_recovery=True, EWC_HEARTBEAT_TIMEOUT_S="60"
    )
    (worker,) = start_workers(processes, env)
    api, url = start_api(processes, env)
    headers = {"Authorization": f"Bearer {token_for(db_url)}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        job_id = submit(client, SPEC)
        worker.wait_for_line(lambda line: "event=epoch" in line and " epoch=3 " in line)

        private_postgres.stop("fast")
        stopped_at = time.monotonic()
        ready = client.get("/readyz")
        post = client.post("/v1/experiments", json=SPEC)
        read = client.get(f"/v1/experiments/{job_id}")
        cancel = client.post(f"/v1/experiments/{job_id}/cancel")
        metrics = client.get("/metrics")
        health = client.get("/healthz")
        say(
            f"stopped PostgreSQL (pg_ctl stop -m fast) during epoch 3 of job {job_id}: "
            f"/readyz {ready.status_code} {ready.json()['checks']}, "
            f"POST /v1/experiments {post.status_code}, GET {read.status_code}, "
            f"cancel {cancel.status_code}, /healthz {health.status_code}, "
            f"/metrics {metrics.status_code}"
        )
        assert ready.status_code == 503 and ready.json()["checks"]["database"].startswith("error")
        assert ready.json()["checks"]["broker"] == "ok"
        for response in (post, read, cancel):
            assert response.status_code == 503, response.text
            assert "database is unavailable" in response.json()["detail"]
            assert response.headers.get("retry-after")
        assert health.status_code == 200
        assert metrics.status_code == 200 and "ewc_database_up 0.0" in metrics.text
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - stopped_at)))
        # The worker's writer meets the outage at its next metric write (an epoch's end): wait
        # for that, not for a guessed time, well within its EWC_DB_RETRY_S (120 s).
        worker.wait_for_line(lambda line: "event=write_retry" in line, timeout=90)
        assert api.popen.poll() is None, api.output
        assert worker.popen.poll() is None, worker.output
        waiting = [line for line in worker.lines if "event=write_retry" in line]
        assert waiting, "the worker should be retrying its metric write"

        private_postgres.start()
        back_at = time.monotonic()
        deadline = back_at + 30
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, "not ready 30 s after the database came back"
            time.sleep(0.2)
        ready_after = time.monotonic() - back_at
        job = wait_for_status(client, job_id, {"succeeded", "failed", "cancelled"})
        assert job["status"] == "succeeded", job
        assert job["attempts"] == 1
        rows = client.get(f"/v1/experiments/{job_id}/metrics").json()["epochs"]
        assert [r["epoch"] for r in rows] == list(range(1, 31))
        new = client.post("/v1/experiments", json={**SPEC, "epochs": 2})
        assert new.status_code == 201, new.text
        assert wait_for_status(client, new.json()["id"], {"succeeded", "failed"})["status"] == (
            "succeeded"
        )
    assert api.popen.poll() is None and worker.popen.poll() is None
    say(
        f"database down {OUTAGE_S} s: API and worker stayed up, the worker paused on "
        f"{len(waiting)} retried write(s); restarted: /readyz 200 after {ready_after:.1f} s, "
        f"job {job_id} went on and succeeded in the same attempt with all 30 epoch rows, "
        "a new submission ran"
    )
