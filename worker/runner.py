"""Run one claimed job: spec from the row → `continual_core.trainer.train` → the database.

Every epoch row and task row is written through `store.jobs` the moment the training core
reports it, each in its own short transaction. A heartbeat thread keeps the claim alive
and brings back cancel requests; the callback's `should_stop()` (polled by the trainer
between batches) turns a cancel, the time limit, a lost claim or a worker shutdown into a
clean stop. Outcomes:

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

import enum
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session, sessionmaker

from continual_core.events import (
    Callback,
    CallbackList,
    EpochEnd,
    RunStart,
    StopRequested,
    TaskEnd,
    TrainingDiverged,
)
from continual_core.spec import ExperimentSpec, validation_problems
from ewc.settings import Settings
from store import jobs
from store.db import unit_of_work
from store.models import Experiment, JobStatus
from worker.tensorboard import TENSORBOARD_DIR, TensorBoardCallback

log = logging.getLogger("ewc.worker")

#: Longest error text stored on a job (the log has the rest).
MAX_ERROR_CHARS = 1000
#: Errors that mean "the database cannot be reached right now" (retried, not fatal).
DATABASE_AWAY = (OperationalError, InterfaceError, PoolTimeoutError)


class StopReason(str, enum.Enum):
    """Why a running job was asked to stop before the trainer finished."""

    cancel = "cancel"
    time_limit = "time_limit"
    lost = "lost"  # another worker took the job over (our heartbeat expired)
    shutdown = "shutdown"  # this worker is shutting down


@dataclass
class StoreCallback(Callback):
    """Writes the trainer's events to the database and answers `should_stop()`."""

    experiment_id: int
    worker: str
    sessions: sessionmaker[Session]
    device: str
    deadline: float  # time.monotonic() value after which the job is stopped
    db_retry_s: float = 120.0  # how long a write waits for an unreachable database
    shutting_down: threading.Event = field(default_factory=threading.Event)
    stop_reason: StopReason | None = None
    task: int = 0  # last task that finished an epoch
    epoch: int = 0  # last epoch recorded (across the run)

    def request_stop(self, reason: StopReason) -> None:
        """Ask the trainer to stop at its next check (the first reason wins)."""
        if self.stop_reason is None:
            self.stop_reason = reason

    def should_stop(self) -> bool:
        if self.stop_reason is None:
            if self.shutting_down.is_set():
                self.request_stop(StopReason.shutdown)
            elif time.monotonic() > self.deadline:
                self.request_stop(StopReason.time_limit)
        return self.stop_reason is not None

    def _write(self, what: str, fn, **values: Any) -> None:
        """One write in its own transaction; waits up to `db_retry_s` for a database that is
        away (training pauses meanwhile), then raises. A lost claim asks the run to stop."""
        give_up = time.monotonic() + self.db_retry_s
        pause = 0.5
        while True:
            try:
                with unit_of_work(self.sessions) as session:
                    ours = fn(session, self.experiment_id, self.worker, **values)
                break
            except DATABASE_AWAY as exc:
                if time.monotonic() + pause > give_up:
                    raise
                log.warning(
                    "event=write_retry experiment_id=%s while=%s retry_in_s=%.1f error=%r",
                    self.experiment_id,
                    what,
                    pause,
                    one_line(exc)[:200],
                )
                time.sleep(pause)
                pause = min(pause * 2, 5.0)
        if not ours:
            log.warning(
                "event=claim_lost experiment_id=%s worker=%s while=%s",
                self.experiment_id,
                self.worker,
                what,
            )
            self.request_stop(StopReason.lost)

    def on_run_start(self, event: RunStart) -> None:
        self._write(
            "run_start",
            jobs.record_run_start,
            num_tasks=event.num_tasks,
            total_epochs=sum(event.epochs_per_task),
            first_task=event.first_task,
            device=self.device,
        )
        log.info(
            "event=run_start experiment_id=%s num_tasks=%s first_task=%s device=%r",
            self.experiment_id,
            event.num_tasks,
            event.first_task,
            self.device,
        )

    def on_epoch_end(self, event: EpochEnd) -> None:
        self._write(
            "epoch",
            jobs.record_epoch,
            task=event.task,
            epoch=event.epoch,
            task_epoch=event.task_epoch,
            loss=event.loss,
            val_accuracy=list(event.val_accuracy),
            train_s=event.train_s,
            eval_s=event.eval_s,
        )
        self.task, self.epoch = event.task, event.epoch
        log.info(
            "event=epoch experiment_id=%s task=%s epoch=%s loss=%.4f train_s=%.2f",
            self.experiment_id,
            event.task,
            event.epoch,
            event.loss,
            event.train_s,
        )

    def on_task_end(self, event: TaskEnd) -> None:
        self._write(
            "task",
            jobs.record_task,
            task=event.task,
            test_accuracy=list(event.test_accuracy),
            fisher_s=event.fisher_s,
            frozen_fraction=event.frozen_fraction,
        )
        log.info(
            "event=task_end experiment_id=%s task=%s test_accuracy=%s",
            self.experiment_id,
            event.task,
            [round(a, 4) for a in event.test_accuracy],
        )

    def where(self) -> str:
        """Where the run is, for messages: "task 2, epoch 3" (the epoch in progress)."""
        if self.epoch == 0:
            return "before the first epoch ended"
        return f"after task {self.task}, epoch {self.epoch}"


class Heartbeat(threading.Thread):
    """Refreshes the job's heartbeat every `interval_s` s; a cancel or lost claim stops it."""

    def __init__(self, callback: StoreCallback, interval_s: float):
        super().__init__(name=f"heartbeat-{callback.experiment_id}", daemon=True)
        self.callback, self.interval_s = callback, interval_s
        self.done = threading.Event()

    def beat(self) -> None:
        """One heartbeat: refresh it, and ask the trainer to stop if the job must end."""
        cb = self.callback
        with unit_of_work(cb.sessions) as session:
            stop = jobs.heartbeat(session, cb.experiment_id, cb.worker)
            ours = stop and jobs.still_owned(session, cb.experiment_id, cb.worker)
        if stop:
            cb.request_stop(StopReason.cancel if ours else StopReason.lost)

    def run(self) -> None:
        while not self.done.wait(self.interval_s):
            try:
                self.beat()
            except Exception as exc:  # noqa: BLE001 - database briefly away: keep training
                log.warning(
                    "event=heartbeat_failed experiment_id=%s error=%r",
                    self.callback.experiment_id,
                    one_line(exc),
                )

    def stop(self) -> None:
        """End the thread (waits for a beat in progress)."""
        self.done.set()
        self.join(timeout=30)


def one_line(exc: BaseException) -> str:
    """`Type: message` on one line, at most MAX_ERROR_CHARS characters."""
    text = " ".join(str(exc).split())
    line = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return line if len(line) <= MAX_ERROR_CHARS else line[: MAX_ERROR_CHARS - 1] + "…"


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
    heartbeat = Heartbeat(callback, settings.heartbeat_s)
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
        with unit_of_work(sessions) as session:
            released = jobs.release_job(session, experiment_id, worker)
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
