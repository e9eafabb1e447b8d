"""A worker stopped politely (SIGTERM) hands its job back; the next worker resumes it.

Real processes: `ewc worker`s, a redis-server and PostgreSQL or a SQLite file; the job is
queued through the store, as the API does it. The SIGTERM goes to the real `ewc worker`
process, so it travels Celery's own path: its warm-shutdown handler sends
`worker_shutting_down`, whose receiver (worker/celery_app.py) sets the runtime's shutdown
flag; the trainer stops after its current batch, the job goes back to `queued` without
using up an attempt, and the process exits 0. A second worker resumes the job from the
checkpoint of task 1 (not from zero): the final accuracy matrix and every epoch's loss
equal an uninterrupted run's, with each epoch row stored once.
"""

from __future__ import annotations

import signal
import time

import pytest

from store.migrate import upgrade
from tests.harness.experiments import Store, two_tasks
from tests.harness.processes import claimed_ids, service_env, start_workers

pytestmark = [pytest.mark.faults, pytest.mark.slow]

#: Two tasks of 20 epochs; the SIGTERM comes half-way through task 2.
SPEC = two_tasks(epochs=40)


@pytest.fixture(params=["postgresql", "sqlite"])
def database(request, tmp_path) -> str:
    if request.param == "postgresql":
        return request.getfixturevalue("pg_database")
    return f"sqlite:///{tmp_path / 'ewc.db'}"


def test_sigterm_hands_the_job_back_and_the_next_worker_resumes_it_from_its_checkpoint(
    tmp_path, database, private_redis, processes, say
):
    upgrade(database)
    # A heartbeat timeout far longer than the test: only the hand-back can requeue the job.
    env = service_env(
        database, private_redis.url, tmp_path / "data", fast_recovery=True,
        EWC_HEARTBEAT_TIMEOUT_S="600",
    )  # fmt: skip
    (first,) = start_workers(processes, env)
    store = Store(database, private_redis.url)
    try:
        experiment_id = store.submit(store.user("ann"), SPEC)
        first.wait_for_line(lambda line: "event=task_end" in line and "task=1 " in line, timeout=180)
        first.wait_for_line(lambda line: "event=epoch" in line and " epoch=26 " in line)
        sent = time.monotonic()
        first.popen.send_signal(signal.SIGTERM)
        code = first.popen.wait(timeout=60)
        exit_s = time.monotonic() - sent
        handed_back = store.job(experiment_id)
        epochs_before = [e["epoch"] for e in store.epochs(experiment_id)]
        say(
            f"[{database.split(':')[0]}] SIGTERM to worker-1 at epoch 26/40: exit code {code} "
            f"after {exit_s:.1f} s; job {handed_back['status']}, attempts "
            f"{handed_back['attempts']}, {len(epochs_before)} epoch rows kept"
        )
        assert code == 0, first.output
        assert any("event=job_released" in line and "released=True" in line for line in first.lines), (
            first.output
        )
        assert handed_back["status"] == "queued" and handed_back["worker"] is None, handed_back
        assert handed_back["attempts"] == 0, handed_back  # a hand-back is not a failed attempt
        assert 26 <= len(epochs_before) < 40, epochs_before

        (second,) = start_workers(processes, env)
        resumed = second.wait_for_line(lambda line: "event=run_start" in line, timeout=120)
        job = store.wait_for(experiment_id, {"succeeded", "failed", "cancelled"}, timeout=300)
        epochs = store.epochs(experiment_id)
        matrix = store.task_rows(experiment_id)
    finally:
        store.close()
    say(f"worker-2 {resumed.split('event=')[1]}; job {job['status']}, attempts {job['attempts']}")
    assert "first_task=2" in resumed, resumed  # from task 1's checkpoint, not from zero
    assert job["status"] == "succeeded", job
    assert job["attempts"] == 1, job
    assert claimed_ids(second) == [experiment_id]
    assert [e["epoch"] for e in epochs] == list(range(1, 41))  # each epoch once

    from continual_core.spec import ExperimentSpec
    from continual_core.trainer import train

    direct = train(ExperimentSpec.model_validate(SPEC), dataset_cache=tmp_path / "datasets")
    assert matrix == direct["accuracy_matrix"]
    assert [e["loss"] for e in epochs] == [e["loss"] for e in direct["epochs"]]
    say("accuracy matrix and all 40 losses equal an uninterrupted run's")
