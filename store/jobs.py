"""The job side of the store: heartbeats, stop checks and metrics as they happen.

A job is claimed by `store.claims`; from then on every write here is guarded by "this
worker still owns this running job", so a worker that lost its job (heartbeat expired,
job re-claimed) cannot overwrite the new owner's state.

Metric writes are idempotent upserts on the tables' unique constraints: re-running a task
after a crash replaces its rows, it never duplicates them.

Functions here flush but never commit: the caller's unit of work does (see `store.db`).
Times are timezone-aware UTC; durations are seconds.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, case, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from store.models import (
    EpochMetric,
    Experiment,
    JobStatus,
    TaskResult,
    summary_metric_values,
    utcnow,
)


def is_postgres(session: Session) -> bool:
    """True when the session is bound to PostgreSQL (else SQLite)."""
    return session.get_bind().dialect.name == "postgresql"


def set_where(session: Session, where, **values: Any) -> bool:
    """UPDATE experiments SET values WHERE where; True if exactly one row changed."""
    result = session.execute(
        update(Experiment)
        .where(where)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def _owned(experiment_id: int, worker: str):
    return and_(
        Experiment.id == experiment_id,
        Experiment.worker == worker,
        Experiment.status == JobStatus.running,
    )


def heartbeat(session: Session, experiment_id: int, worker: str) -> bool:
    """Refresh the heartbeat of a job this worker runs; True when the job must stop.

    Returns True when its owner asked to cancel it, or when it is no longer this worker's
    running job (finished, cancelled, or taken over after a lost heartbeat); False otherwise.
    """
    if not set_where(session, _owned(experiment_id, worker), heartbeat_at=utcnow()):
        return True
    cancel = session.execute(
        select(Experiment.cancel_requested).where(Experiment.id == experiment_id)
    ).scalar_one()
    return bool(cancel)


def stop_wanted(session: Session, experiment_id: int, worker: str) -> str | None:
    """Why the job this worker runs must stop, read without writing: "lost" when it is no
    longer this worker's running job, "cancel" when its owner asked to cancel it, else None.
    One indexed SELECT of a single row: cheap enough to poll a few times a second."""
    row = session.execute(
        select(Experiment.status, Experiment.worker, Experiment.cancel_requested).where(
            Experiment.id == experiment_id
        )
    ).one_or_none()
    if row is None or row.status != JobStatus.running or row.worker != worker:
        return "lost"
    return "cancel" if row.cancel_requested else None


def still_owned(session: Session, experiment_id: int, worker: str) -> bool:
    """True while `worker` still runs this job (status running, worker column ours)."""
    found = session.execute(
        select(Experiment.id).where(_owned(experiment_id, worker))
    ).scalar_one_or_none()
    return found is not None


def record_run_start(
    session: Session,
    experiment_id: int,
    worker: str,
    *,
    num_tasks: int,
    total_epochs: int,
    first_task: int,
    device: str | None = None,
) -> bool:
    """Record the shape of the run (and the device); True if the job is still ours.

    On a resume (`first_task` > 1) the progress goes back to the end of the last finished
    task: the epochs of the interrupted task run again and replace their rows.
    """
    values: dict[str, Any] = {
        "num_tasks": num_tasks,
        "total_epochs": total_epochs,
        "current_task": first_task - 1,
    }
    if device is not None:
        values["device"] = device
    return set_where(session, _owned(experiment_id, worker), **values)


def _upsert(session: Session, table, values: dict[str, Any], keys: list[str]) -> None:
    insert = pg_insert if is_postgres(session) else sqlite_insert
    stmt = insert(table).values(**values)
    changed = {k: stmt.excluded[k] for k in values if k not in keys}
    session.execute(stmt.on_conflict_do_update(index_elements=keys, set_=changed))


def record_epoch(
    session: Session,
    experiment_id: int,
    worker: str,
    *,
    task: int,
    epoch: int,
    task_epoch: int,
    loss: float,
    val_accuracy: list[float],
    train_s: float,
    eval_s: float,
) -> bool:
    """Store one epoch row (replacing a row of the same epoch) and the progress.

    Returns False, writing nothing, when the job is no longer this worker's.
    """
    if not set_where(session, _owned(experiment_id, worker), current_task=task, current_epoch=epoch):
        return False
    _upsert(
        session,
        EpochMetric.__table__,
        {
            "experiment_id": experiment_id,
            "task": task,
            "epoch": epoch,
            "task_epoch": task_epoch,
            "loss": float(loss),
            "val_accuracy": [float(a) for a in val_accuracy],
            "train_s": float(train_s),
            "eval_s": float(eval_s),
            "created_at": utcnow(),
        },
        ["experiment_id", "epoch"],
    )
    return True


def record_task(
    session: Session,
    experiment_id: int,
    worker: str,
    *,
    task: int,
    test_accuracy: list[float],
    fisher_s: float | None = None,
    frozen_fraction: float | None = None,
) -> bool:
    """Store one finished task's row of the accuracy matrix (replacing an earlier one).

    Returns False, writing nothing, when the job is no longer this worker's.
    """
    if not set_where(session, _owned(experiment_id, worker), current_task=task):
        return False
    _upsert(
        session,
        TaskResult.__table__,
        {
            "experiment_id": experiment_id,
            "task": task,
            "test_accuracy": [float(a) for a in test_accuracy],
            "fisher_s": None if fisher_s is None else float(fisher_s),
            "frozen_fraction": None if frozen_fraction is None else float(frozen_fraction),
            "created_at": utcnow(),
        },
        ["experiment_id", "task"],
    )
    return True


def finish_job(
    session: Session,
    experiment_id: int,
    worker: str,
    status: JobStatus,
    summary: dict[str, Any] | None = None,
    timings: dict[str, Any] | None = None,
    versions: dict[str, Any] | None = None,
    error: str | None = None,
) -> bool:
    """End a job this worker runs with a final `status`; True if it was still ours.

    `summary`, `timings` and `versions` are written when given (a failed job keeps whatever
    it had), the summary's metrics also to their columns; `error` is a one-line reason for
    failed or cancelled jobs.
    """
    if not JobStatus(status).finished:
        raise ValueError(f"finish_job: status must be succeeded, failed or cancelled, not {status}")
    values: dict[str, Any] = {"status": JobStatus(status), "finished_at": utcnow(), "error": error}
    for key, value in (("summary", summary), ("timings", timings), ("versions", versions)):
        if value is not None:
            values[key] = value
    if summary is not None:  # and its metrics as columns, for filters and sorting in SQL
        values.update(summary_metric_values(summary))
    return set_where(session, _owned(experiment_id, worker), **values)


def release_job(session: Session, experiment_id: int, worker: str) -> bool:
    """Hand a job this worker runs back to the queue (the worker is shutting down).

    The job becomes `queued` again without counting the attempt (it did not crash), so the
    next worker resumes it from its last checkpoint. True if it was still ours.
    """
    return set_where(
        session,
        _owned(experiment_id, worker),
        status=JobStatus.queued,
        worker=None,
        heartbeat_at=None,
        wakeup_sent_at=None,
        attempts=case((Experiment.attempts > 0, Experiment.attempts - 1), else_=0),
    )
