"""The training callback of a job run by a worker: the trainer's events → the database.

`StoreCallback` writes every epoch row and task row through `store.jobs` the moment the
training core reports it, each in its own short transaction (waiting for a database that
is briefly away), and answers the trainer's `should_stop()` before every batch from a flag
that `worker.watch.JobWatch`, the time limit or a worker shutdown sets.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from continual_core.events import Callback, EpochEnd, RunStart, TaskEnd
from store import jobs
from store.db import unit_of_work
from worker.retry import DATABASE_AWAY, one_line, retry
from worker.watch import StopReason

log = logging.getLogger("ewc.worker")


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
    batches: int = 0  # batches started in this run (one per `should_stop()` that said go)

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
        if self.stop_reason is not None:
            return True
        self.batches += 1
        if log.isEnabledFor(logging.DEBUG):
            log.debug("event=batch experiment_id=%s batch=%s", self.experiment_id, self.batches)
        return False

    def _write(self, what: str, fn, **values: Any) -> None:
        """One write in its own transaction; waits up to `db_retry_s` for a database that is
        away (training pauses meanwhile; not at all once the worker is shutting down), then
        raises. A lost claim asks the run to stop."""

        def write() -> bool:
            with unit_of_work(self.sessions) as session:
                return fn(session, self.experiment_id, self.worker, **values)

        def waiting(exc: Exception, _tries: int, pause: float, retrying: bool) -> None:
            if retrying:
                log.warning(
                    "event=write_retry experiment_id=%s while=%s retry_in_s=%.1f error=%r",
                    self.experiment_id,
                    what,
                    pause,
                    one_line(exc)[:200],
                )

        # Shutting down (a host stopping takes its database along): no waiting, the job is
        # handed back or, failing that, taken over once its heartbeat expires.
        ours = retry(
            write,
            retry_on=DATABASE_AWAY,
            budget_s=self.db_retry_s,
            interrupt=self.shutting_down,
            on_failure=waiting,
        )
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

