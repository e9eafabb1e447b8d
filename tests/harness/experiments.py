"""Experiments for the tests and benchmarks that run real jobs, in one place.

The specs (`TINY`, `SMALLEST`, `two_tasks`, `README_EXAMPLE`), a user with a token
(`token_for`), a submission over HTTP and the wait for its end (`submit`,
`wait_for_status`), and `Store`: the same queueing, cancelling and reading straight
through the store, as the API does it, for tests of the worker alone. Used by tests/e2e,
tests/faults and bench/service_speed.py.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import httpx
import sqlalchemy as sa

from common.broker import make_celery, send_wakeup
from common.settings import Settings
from continual_core.spec import ExperimentSpec
from store.db import make_engine, make_session_factory, unit_of_work
from store.experiments import create_experiment, request_cancel
from store.models import User
from store.users import create_token, create_user

#: Two tasks of one epoch each on 8x8 digits: a second or two of training.
TINY: dict[str, Any] = {
    "dataset": "digits",
    "model": "mlp",
    "dataset_update": "permute",
    "splits": 2,
    "epochs": 2,
    "seed": 0,
}
#: The smallest job there is: one task, one epoch, 8x8 digits.
SMALLEST: dict[str, Any] = {
    "dataset": "digits",
    "model": "mlp",
    "dataset_update": "full",
    "epochs": 1,
    "seed": 0,
}
#: The README's example job (mnist-5k, 3 permuted tasks, 15 epochs, EWC).
README_EXAMPLE: dict[str, Any] = {
    "dataset": "mnist-5k",
    "dataset_update": "permute",
    "splits": 3,
    "epochs": 15,
    "ewc": {"lambda": 100},
}


def two_tasks(epochs: int, batch_size: int = 16) -> dict[str, Any]:
    """Two tasks of `epochs // 2` epochs each, small batches: long enough to be stopped,
    killed or cut off in the middle of task 2, after task 1's checkpoint."""
    return {**TINY, "epochs": epochs, "batch_size": batch_size}


def run_flags(spec: dict[str, Any]) -> list[str]:
    """The `ewc run` flags of a flat spec: {"dataset_update": "permute"} → --dataset-update
    permute."""
    flags = []
    for key, value in spec.items():
        if isinstance(value, dict | list):
            raise TypeError(f"{key}: only a flat spec maps to flags one by one")
        flags += [f"--{key.replace('_', '-')}", str(value)]
    return flags


def token_for(database_url: str, name: str = "e2e") -> str:
    """Create user `name` with a fresh token in a migrated database; returns the token."""

    engine = make_engine(database_url)
    try:
        with unit_of_work(make_session_factory(engine)) as session:
            _, token = create_token(session, create_user(session, name))
        return token
    finally:
        engine.dispose()


def submit(client: httpx.Client, spec: dict[str, Any]) -> int:
    """POST /v1/experiments (it must answer 201); the new experiment's id."""
    response = client.post("/v1/experiments", json=spec)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def wait_for_status(
    client: httpx.Client, experiment_id: int, statuses: set[str], timeout: float = 120
) -> dict:
    """Poll GET /v1/experiments/{id} until its status is one of `statuses`; returns it."""
    deadline = time.monotonic() + timeout
    body: dict = {}
    while time.monotonic() < deadline:
        response = client.get(f"/v1/experiments/{experiment_id}")
        assert response.status_code == 200, response.text
        body = response.json()
        if body["status"] in statuses:
            return body
        time.sleep(0.1)
    raise AssertionError(f"experiment {experiment_id} still {body.get('status')}: {body}")


def _json(value):
    """A JSON column read with plain SQL: decoded on PostgreSQL, a string on SQLite."""
    return json.loads(value) if isinstance(value, str) else value


@dataclass
class Store:
    """One database, one broker, no API process: queue jobs (and send their wake-ups), ask
    for cancels and read back what the worker stored, as the API does."""

    database_url: str
    broker_url: str

    def __post_init__(self) -> None:

        self.engine = make_engine(self.database_url)
        self.sessions = make_session_factory(self.engine)
        self.celery = make_celery(Settings(broker_url=self.broker_url))

    def close(self) -> None:
        self.engine.dispose()

    def user(self, name: str) -> int:

        with unit_of_work(self.sessions) as session:
            return create_user(session, name).id

    def submit(self, owner_id: int, spec: dict) -> int:
        """Queue a job (as POST /v1/experiments does) and send its wake-up; its id."""

        parsed = ExperimentSpec.model_validate(spec)
        with unit_of_work(self.sessions) as session:
            job = create_experiment(
                session,
                session.get(User, owner_id),
                parsed.to_json_dict(),
                num_tasks=parsed.num_tasks,
                total_epochs=sum(parsed.epochs_per_task),
            )
            experiment_id, queue = job.id, job.queue
        assert send_wakeup(self.celery, queue, experiment_id)
        return experiment_id

    def cancel(self, experiment_id: int) -> None:
        """Ask for a cancel, as POST /v1/experiments/{id}/cancel does (committed on return)."""

        with unit_of_work(self.sessions) as session:
            request_cancel(session, experiment_id)

    def job(self, experiment_id: int) -> dict:
        """The job's row (status, error, attempts, progress) as a dict."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.text(
                    "SELECT status, error, attempts, worker, heartbeat_at, current_task, "
                    "current_epoch FROM experiments WHERE id = :i"
                ),
                {"i": experiment_id},
            ).one()
        return dict(row._mapping)

    def epochs(self, experiment_id: int) -> list[dict]:
        """The job's epoch rows, in epoch order."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT epoch, task, loss, val_accuracy FROM epoch_metrics "
                    "WHERE experiment_id = :i ORDER BY epoch"
                ),
                {"i": experiment_id},
            ).all()
        return [{**r._mapping, "val_accuracy": _json(r.val_accuracy)} for r in rows]

    def task_rows(self, experiment_id: int) -> list[list[float]]:
        """The job's accuracy matrix, one row per finished task."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT test_accuracy FROM task_results WHERE experiment_id = :i ORDER BY task"
                ),
                {"i": experiment_id},
            ).all()
        return [_json(r[0]) for r in rows]

    def wait_for(self, experiment_id: int, statuses: set[str], timeout: float = 180) -> dict:
        """Poll the job until its status is one of `statuses`; returns its row."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(experiment_id)
            if job["status"] in statuses:
                return job
            assert time.monotonic() < deadline, f"job {experiment_id} still {job}"
            time.sleep(0.1)
