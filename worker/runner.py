"""Run one claimed job: spec from the row → `continual_core.trainer.train` → the database.

Every epoch row and task row is written through `store.jobs` the moment the training core
reports it, each in its own short transaction. A watch thread (`worker.watch`) keeps the
claim alive and notices a cancel within `CANCEL_POLL_S` seconds; the callback's
`should_stop()` (polled by the trainer before every batch, it only reads a flag) turns a
cancel, the time limit, a lost claim or a worker shutdown into a clean stop after the
current batch. Outcomes:

- the trainer returns → `succeeded` with summary, timings and versions;
- cancel requested → `cancelled` (metrics so far kept);
- time limit → `failed` with the limit and where it struck;
- `TrainingDiverged` → `failed` with its message (task, epoch);
- any other exception → `failed` with a one-line error (full traceback in the log);
- worker shutting down → handed back to the queue (`queued`), resumed from its last
  checkpoint by the next worker;
- the claim was lost (another worker took the job over) → nothing more is written.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from common.settings import Settings
from continual_core.events import CallbackList, StopRequested, TrainingDiverged
from continual_core.spec import ExperimentSpec, validation_problems
from store import jobs
from store.db import unit_of_work
from store.models import Experiment, JobStatus
from worker.callback import DATABASE_AWAY, MAX_ERROR_CHARS, StoreCallback, one_line
from worker.tensorboard import TENSORBOARD_DIR, TensorBoardCallback
from worker.watch import JobWatch, StopReason

__all__ = [
    "DATABASE_AWAY",
    "MAX_ERROR_CHARS",
    "Outcome",
    "StopReason",
    "StoreCallback",
    "checkpoint_dir",
    "one_line",
    "run_job",
    "time_limit_s",
]

log = logging.getLogger("ewc.worker")
#: How long a shutting-down worker tries to hand its job back to a database that is away.
RELEASE_RETRY_S = 5.0


def checkpoint_dir(settings: Settings, experiment_id: int) -> Path:
    """The folder of a job's checkpoints and final model: <artifacts>/experiments/<id>/."""
    return settings.resolved_artifacts_dir() / "experiments" / str(experiment_id)


def time_limit_s(settings: Settings, spec: ExperimentSpec) -> int:
    """The job's run-time limit in seconds: its own, capped by the server's."""
    if spec.time_limit_s is None:
        return settings.job_time_limit_s
    return min(spec.time_limit_s, settings.job_time_limit_s)


@dataclass(frozen=True)
class Outcome:
    """How a job ended: its final status (None: handed back or lost) and the error."""

    status: JobStatus | None
    error: str | None = None


def run_job(
    job: Experiment,
    *,
    worker: str,
    settings: Settings,
    sessions: sessionmaker[Session],
    device: str,
    shutting_down: threading.Event | None = None,
) -> Outcome:
    """Train a job this worker has just claimed and record how it ended.

    Never raises for a problem of the job itself (bad spec, divergence, a bug in the run):
    those end the job `failed` with a readable error. Returns the outcome.
    """
    started = time.monotonic()
    try:
        spec = ExperimentSpec.model_validate(job.spec)
    except ValidationError as exc:
        problems = "; ".join(f"{f}: {m}" for f, m in validation_problems(exc))
        return _finish(
            job.id, worker, sessions, JobStatus.failed, error=f"invalid spec: {problems}"
        )

    limit = time_limit_s(settings, spec)
    callback = StoreCallback(
        experiment_id=job.id,
        worker=worker,
        sessions=sessions,
        device=device,
        deadline=started + limit,
        db_retry_s=settings.db_retry_s,
        shutting_down=shutting_down or threading.Event(),
    )
    tensorboard = (
        TensorBoardCallback(checkpoint_dir(settings, job.id) / TENSORBOARD_DIR)
        if settings.tensorboard
        else None
    )
    heartbeat = JobWatch(callback, settings.heartbeat_s)
    log.info(
        "event=job_start experiment_id=%s worker=%s attempt=%s queue=%s time_limit_s=%s",
        job.id,
        worker,
        job.attempts,
        job.queue,
        limit,
    )
    heartbeat.start()
    try:
        from continual_core.trainer import train  # TensorFlow: only in the worker

        result = train(
            spec,
            dataset_cache=settings.resolved_dataset_cache(),
            callback=CallbackList([callback, tensorboard] if tensorboard else [callback]),
            checkpoint_dir=checkpoint_dir(settings, job.id),
            resume=True,
        )
    except StopRequested:
        return _stopped(job.id, worker, sessions, callback, limit)
    except TrainingDiverged as exc:
        log.warning("event=job_diverged experiment_id=%s error=%r", job.id, str(exc))
        return _finish(
            job.id,
            worker,
            sessions,
            JobStatus.failed,
            error=one_line(exc),
            retry_s=settings.db_retry_s,
        )
    except Exception as exc:
        if isinstance(exc, DATABASE_AWAY) and callback.shutting_down.is_set():
            # Stopping while the database is away: not a failure of the job.
            log.warning("event=write_failed_at_shutdown experiment_id=%s", job.id)
            callback.request_stop(StopReason.shutdown)
            return _stopped(job.id, worker, sessions, callback, limit)
        log.exception("event=job_crashed experiment_id=%s", job.id)
        if callback.stop_reason is StopReason.lost:
            return Outcome(None, "claim lost")
        return _finish(
            job.id,
            worker,
            sessions,
            JobStatus.failed,
            error=one_line(exc),
            retry_s=settings.db_retry_s,
        )
    finally:
        heartbeat.stop()
        if tensorboard is not None:
            tensorboard.close()  # one event file per job: a long-lived worker must not leak them
    if callback.stop_reason is StopReason.lost:
        return Outcome(None, "claim lost")
    outcome = _finish(
        job.id,
        worker,
        sessions,
        JobStatus.succeeded,
        summary=result.get("summary"),
        timings=result.get("timings"),
        versions=result.get("versions"),
        retry_s=settings.db_retry_s,
    )
    log.info(
        "event=job_end experiment_id=%s status=%s total_s=%.1f summary=%s",
        job.id,
        outcome.status.value if outcome.status else None,
        time.monotonic() - started,
        result.get("summary"),
    )
    return outcome


def _stopped(
    experiment_id: int,
    worker: str,
    sessions: sessionmaker[Session],
    callback: StoreCallback,
    limit: int,
) -> Outcome:
    reason = callback.stop_reason
    where = callback.where()
    log.info(
        "event=job_stopped experiment_id=%s reason=%s batches=%s at=%r",
        experiment_id,
        reason.value if reason else None,
        callback.batches,
        where,
    )
    if reason is StopReason.cancel:
        return _finish(
            experiment_id,
            worker,
            sessions,
            JobStatus.cancelled,
            error=f"cancelled on request {where}",
            retry_s=callback.db_retry_s,
        )
    if reason is StopReason.time_limit:
        return _finish(
            experiment_id,
            worker,
            sessions,
            JobStatus.failed,
            error=f"time limit of {limit} s reached {where}; ask for a larger time_limit_s "
            "(up to the server's EWC_JOB_TIME_LIMIT_S) or fewer epochs",
            retry_s=callback.db_retry_s,
        )
    if reason is StopReason.shutdown:
        released = _release(experiment_id, worker, sessions)
        if released is None:
            return Outcome(None, "worker shutting down; job not handed back (database away)")
        log.info(
            "event=job_released experiment_id=%s worker=%s released=%s at=%r",
            experiment_id,
            worker,
            released,
            where,
        )
        return Outcome(None, "worker shutting down")
    log.warning(
        "event=job_abandoned experiment_id=%s worker=%s (claim lost)", experiment_id, worker
    )
    return Outcome(None, "claim lost")


def _release(experiment_id: int, worker: str, sessions: sessionmaker[Session]) -> bool | None:
    """Hand the job back on shutdown; None when the database stays away RELEASE_RETRY_S
    (a host shutting down stops it too): the worker exits anyway, the job stays `running`
    and is taken over once its heartbeat has expired."""
    give_up = time.monotonic() + RELEASE_RETRY_S
    while True:
        try:
            with unit_of_work(sessions) as session:
                return jobs.release_job(session, experiment_id, worker)
        except DATABASE_AWAY as exc:
            if time.monotonic() + 0.5 > give_up:
                log.warning(
                    "event=job_release_failed experiment_id=%s worker=%s error=%r "
                    "(the job is taken over once its heartbeat expires)",
                    experiment_id,
                    worker,
                    one_line(exc)[:200],
                )
                return None
            time.sleep(0.5)


def _finish(
    experiment_id: int,
    worker: str,
    sessions: sessionmaker[Session],
    status: JobStatus,
    *,
    error: str | None = None,
    retry_s: float = 10.0,
    **values: Any,
) -> Outcome:
    """Write the final status. A final write is worth waiting for: a database that is away
    is retried for `retry_s` seconds (at least three tries), then the error is raised (the
    job stays `running`, and is resumed once its heartbeat has expired)."""
    give_up = time.monotonic() + retry_s
    attempt = 0
    while True:
        attempt += 1
        try:
            with unit_of_work(sessions) as session:
                ours = jobs.finish_job(
                    session, experiment_id, worker, status, error=error, **values
                )
            break
        except Exception as exc:
            log.warning(
                "event=finish_failed experiment_id=%s attempt=%s error=%r",
                experiment_id,
                attempt,
                one_line(exc),
            )
            pause = min(0.5 * 2 ** (attempt - 1), 5.0)
            waiting_for_database = isinstance(exc, DATABASE_AWAY)
            if attempt >= 3 and (not waiting_for_database or time.monotonic() + pause > give_up):
                raise
            time.sleep(pause)
    if not ours:
        log.warning("event=finish_skipped experiment_id=%s (claim lost)", experiment_id)
        return Outcome(None, "claim lost")
    log.info(
        "event=job_finished experiment_id=%s status=%s error=%r", experiment_id, status.value, error
    )
    return Outcome(status, error)
