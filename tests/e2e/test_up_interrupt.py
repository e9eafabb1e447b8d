"""Ctrl-C of `ewc up` while a job runs: it stops cleanly, and the next `ewc up` finishes it.

`ewc up` runs in a process group of its own with a temporary data folder, no
EWC_DATABASE_URL and no EWC_BROKER_URL (SQLite and the embedded redis-server), as on a
newcomer's laptop. Half-way through task 2 of a job the test sends SIGINT to that process
group, as a terminal's Ctrl-C does: `ewc up` passes SIGTERM on to its worker, whose job goes
back to the queue, and exits 0. A second `ewc up` on the same data folder resumes the job
from the checkpoint of task 1 and finishes it with the result of an uninterrupted run.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from tests.harness.experiments import submit, two_tasks
from tests.harness.processes import EWC, Proc, free_port, spawn

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

#: Unset for `ewc up`, so that it uses its embedded defaults.
SERVICE_VARIABLES = ("EWC_DATABASE_URL", "EWC_BROKER_URL", "EWC_ADMIN_TOKEN")
SPEC = two_tasks(epochs=40)


def up(data_dir: Path) -> tuple[Proc, str, str]:
    """Start `ewc up` in a new process group; returns (process, URL, admin token)."""
    port = free_port()
    env = {
        "EWC_DATA_DIR": str(data_dir),
        "PORT": str(port),
        "EWC_PORT": str(port),
        "EWC_WAKEUP_RESEND_S": "2",  # the second worker finds the handed-back job quickly
    }
    service = spawn("ewc up", [*EWC, "up"], env, unset=SERVICE_VARIABLES, new_session=True)
    line = service.wait_for_line(lambda s: s.startswith("EWC Server is up: "), timeout=120)
    token = (data_dir / "admin-token").read_text().strip()
    return service, line.split()[4], token


def ctrl_c(service: Proc) -> int:
    """SIGINT to the process group, as a terminal's Ctrl-C; the exit code."""
    service.send(signal.SIGINT)
    try:
        return service.popen.wait(timeout=90)
    except subprocess.TimeoutExpired:
        service.send(signal.SIGKILL)
        service.popen.wait()
        raise


def test_ctrl_c_of_ewc_up_hands_the_job_back_and_the_next_up_finishes_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no .env or ./data of the checkout
    data_dir = tmp_path / "data"
    first, url, token = up(data_dir)
    try:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as client:
            experiment_id = submit(client, SPEC)
        first.wait_for_line(lambda s: "event=task_end" in s and "task=1 " in s, timeout=240)
        first.wait_for_line(lambda s: "event=epoch" in s and " epoch=26 " in s)
    finally:
        code = ctrl_c(first)
    time.sleep(0.2)  # the output thread reads the last lines
    assert code == 0, first.output
    assert "Stopped." in first.output
    released = [s for s in first.lines if "event=job_released" in s]
    assert released and "released=True" in released[0], first.output

    engine = sa.create_engine(f"sqlite:///{data_dir / 'ewc.db'}")
    try:
        with engine.connect() as conn:
            job = conn.execute(
                sa.text("SELECT status, attempts, worker FROM experiments WHERE id = :i"),
                {"i": experiment_id},
            ).one()
    finally:
        engine.dispose()
    assert tuple(job) == ("queued", 0, None), job

    second, url, token = up(data_dir)
    try:
        resumed = second.wait_for_line(lambda s: "event=run_start" in s, timeout=120)
        assert f"experiment_id={experiment_id} " in resumed and "first_task=2" in resumed, resumed
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as client:
            deadline = time.monotonic() + 240
            while (job := client.get(f"/v1/experiments/{experiment_id}").json())["status"] in (
                "queued",
                "running",
            ):
                assert time.monotonic() < deadline, job
                time.sleep(0.2)
            metrics = client.get(f"/v1/experiments/{experiment_id}/metrics").json()
    finally:
        assert ctrl_c(second) == 0, second.output
    assert job["status"] == "succeeded" and job["attempts"] == 1, job
    assert [e["epoch"] for e in metrics["epochs"]] == list(range(1, 41))

    from continual_core.spec import ExperimentSpec
    from continual_core.trainer import train

    direct = train(ExperimentSpec.model_validate(SPEC), dataset_cache=tmp_path / "datasets")
    assert metrics["accuracy_matrix"] == direct["accuracy_matrix"]
    assert [e["loss"] for e in metrics["epochs"]] == [e["loss"] for e in direct["epochs"]]
