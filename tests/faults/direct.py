"""Submitting, cancelling and reading jobs straight through the store, as the API does.

For fault tests about the worker alone: no API process is needed to queue a job, send its
wake-up, ask for its cancel or read what the worker stored.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import sqlalchemy as sa

from common.broker import make_celery, send_wakeup
from common.settings import Settings
from continual_core.spec import ExperimentSpec
from store.db import make_engine, make_session_factory, unit_of_work
from store.experiments import create_experiment, request_cancel
from store.models import User
from store.users import create_user


def _json(value):
    """A JSON column read with plain SQL: decoded on PostgreSQL, a string on SQLite."""
    return json.loads(value) if isinstance(value, str) else value


@dataclass
class Store:
    """One database, one broker: queue jobs, cancel them, read them back."""

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
                    "SELECT status, error, attempts, worker, heartbeat_at, current_task, current_epoch "
                    "FROM experiments WHERE id = :i"
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
