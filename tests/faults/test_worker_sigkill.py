"""Fault (a): the worker is killed with SIGKILL in the middle of task 2.

Real processes: an API (uvicorn), `ewc worker`s, PostgreSQL and a redis-server. The dead
worker's heartbeat goes silent; its job is taken up again by a freshly started worker,
which resumes it from the checkpoint of task 1. The final accuracy matrix and every epoch's
loss must equal an uninterrupted run with the same seed, with each epoch row stored once.
"""

from __future__ import annotations

import signal
import time

import httpx
import pytest
import sqlalchemy as sa

from store.migrate import upgrade
from tests.harness.experiments import submit, token_for, two_tasks, wait_for_status
from tests.harness.processes import claimed_ids, service_env, start_api, start_workers

pytestmark = [pytest.mark.faults, pytest.mark.slow]

#: Two tasks of 20 epochs each: task 2 is long enough to be killed in.
SPEC = two_tasks(epochs=40)


def test_a_worker_killed_mid_task_2_is_resumed_and_ends_as_an_uninterrupted_run(
    tmp_path, pg_database, private_redis, processes, say
):
    upgrade(pg_database)
    env = service_env(pg_database, private_redis.url, tmp_path / "data", fast_recovery=True)
    (first,) = start_workers(processes, env)
    _, url = start_api(processes, env)
    headers = {"Authorization": f"Bearer {token_for(pg_database)}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        experiment_id = submit(client, SPEC)
        first.wait_for_line(lambda line: "event=task_end" in line and "task=1 " in line)
        # Half-way through task 2 (epochs 21..40): its checkpoint is the one of task 1.
        first.wait_for_line(lambda line: "event=epoch" in line and " epoch=26 " in line)
        first.popen.send_signal(signal.SIGKILL)  # no goodbye: the heartbeat just stops
        first.popen.wait()
        dead = client.get(f"/v1/experiments/{experiment_id}").json()
        say(
            f"SIGKILLed worker-1 (pid {first.popen.pid}) at task {dead['progress']['task']}, "
            f"epoch {dead['progress']['epoch']}/40; job still {dead['status']}"
        )
        assert dead["status"] == "running" and dead["progress"]["task"] == 2
        partial = client.get(f"/v1/experiments/{experiment_id}/metrics").json()
        assert len(partial["accuracy_matrix"]) == 1  # task 1 finished, task 2 cut short

        killed_at = time.monotonic()
        (second,) = start_workers(processes, env)
        resumed = second.wait_for_line(lambda line: "event=run_start" in line, timeout=60)
        assert "first_task=2" in resumed
        job = wait_for_status(client, experiment_id, {"succeeded", "failed", "cancelled"})
        say(
            f"worker-2 took the job over after the heartbeat expired, resumed at task 2 "
            f"({resumed.split('event=')[1]}), {job['status']} "
            f"{time.monotonic() - killed_at:.1f} s after the kill, attempts={job['attempts']}"
        )
        assert job["status"] == "succeeded", job
        assert job["attempts"] == 2
        assert claimed_ids(second) == [experiment_id]
        metrics = client.get(f"/v1/experiments/{experiment_id}/metrics").json()
    assert [e["epoch"] for e in metrics["epochs"]] == list(range(1, 41))
    assert len(metrics["accuracy_matrix"]) == 2
    engine = sa.create_engine(pg_database)
    with engine.connect() as conn:
        stored = conn.execute(
            sa.text(
                "SELECT (SELECT count(*) FROM epoch_metrics WHERE experiment_id = :i), "
                "(SELECT count(*) FROM task_results WHERE experiment_id = :i)"
            ),
            {"i": experiment_id},
        ).one()
    engine.dispose()
    assert tuple(stored) == (40, 2)

    from continual_core.spec import ExperimentSpec
    from continual_core.trainer import train

    direct = train(ExperimentSpec.model_validate(SPEC), dataset_cache=tmp_path / "datasets")
    assert metrics["accuracy_matrix"] == direct["accuracy_matrix"]
    assert [e["loss"] for e in metrics["epochs"]] == [e["loss"] for e in direct["epochs"]]
    assert [e["val_accuracy"] for e in metrics["epochs"]] == [
        e["val_accuracy"] for e in direct["epochs"]
    ]
    say(
        f"stored: {stored[0]} epoch rows (1..40, none lost or duplicated), {stored[1]} task rows; "
        f"accuracy matrix {metrics['accuracy_matrix']} == uninterrupted run's; all 40 losses equal"
    )
