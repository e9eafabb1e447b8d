"""The training callback of a job run by a worker: the trainer's events → the database.

`StoreCallback` hands every event (run start, epoch, task) to a writer thread the moment
the training core reports it; the thread writes it through `store.jobs` at once — what has
queued up meanwhile in the same transaction, in order — then passes it to its `followers`
(the TensorBoard files) and logs it. So the training thread never waits for the database,
except:

- at a task's end, which waits until everything up to that task's row is written: the
  trainer writes the task's checkpoint next, and a checkpoint on disk must never be ahead
  of the rows in the database (a job resumed from it does not write them again);
- when `MAX_PENDING` events wait (a database that is away: the writer retries for up to
  `db_retry_s`, and training pauses once the queue is full);
- at `close()`, which the runner calls before it writes how the job ended, so a job's final
  status always comes after all of its metrics.

A write that fails for good is raised on the training thread, at its next event or by
`check()`. It also answers the trainer's `should_stop()` before every compiled training call
(a batch, or k of them: `EWC_STEPS_PER_CALL`) from a flag
that `worker.watch.JobWatch`, the time limit, a lost claim or a worker shutdown sets.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from continual_core.events import Callback, EpochEnd, RunStart, TaskEnd
from store import jobs
from store.db import unit_of_work
from worker.retry import DATABASE_AWAY, one_line, retry
from worker.watch import StopReason

log = logging.getLogger("ewc.worker")

#: Events waiting for the writer before an event makes the training thread wait.
MAX_PENDING = 64


@dataclass
class StoreCallback(Callback):
    """Writes the trainer's events to the database behind the training, in order, and
    answers `should_stop()`."""

    experiment_id: int
    worker: str
    sessions: sessionmaker[Session]
    device: str
    deadline: float  # time.monotonic() value after which the job is stopped
    db_retry_s: float = 120.0  # how long a write waits for an unreachable database
    shutting_down: threading.Event = field(default_factory=threading.Event)
    #: Callbacks that hear each event on the writer thread, after it is written (TensorBoard).
    followers: list[Callback] = field(default_factory=list)
    stop_reason: StopReason | None = None
    task: int = 0  # last task that finished an epoch
    epoch: int = 0  # last epoch recorded (across the run)
    batches: int = 0  # training calls started in this run (one per `should_stop()` that said go: a batch, or k)

    def __post_init__(self) -> None:
        self._cond = threading.Condition()
        self._pending: list[RunStart | EpochEnd | TaskEnd] = []
        self._busy = False  # the writer holds events taken from `_pending`
        self._closing = False
        self._error: BaseException | None = None  # a write that failed, not yet raised
        self._failed = False  # a write failed (or the claim was lost): nothing more is written
        self._thread: threading.Thread | None = None

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

    # The training thread -----------------------------------------------------------------

    def on_run_start(self, event: RunStart) -> None:
        self._submit(event)

    def on_epoch_end(self, event: EpochEnd) -> None:
        self.task, self.epoch = event.task, event.epoch
        self._submit(event)

    def on_task_end(self, event: TaskEnd) -> None:
        self._submit(event)
        self.flush()  # the task's checkpoint comes next: its rows first

    def _submit(self, event: RunStart | EpochEnd | TaskEnd) -> None:
        self.check()
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=f"job-events-{self.experiment_id}", daemon=True
                )
                self._thread.start()
            while len(self._pending) >= MAX_PENDING and self._error is None:
                self._cond.wait()
            self._pending.append(event)
            self._cond.notify_all()
        self.check()

    def flush(self) -> None:
        """Wait until every event handed over is written; raise a write that failed."""
        self._wait()
        self.check()

    def check(self) -> None:
        """Raise (once) the error of a write that failed for good."""
        error, self._error = self._error, None
        if error is not None:
            raise error

    def close(self) -> None:
        """Wait until every event handed over is written (or has failed), and end the
        writer thread. Never raises: a failed write is kept for `check()`."""
        self._wait()
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()

    def _wait(self) -> None:
        with self._cond:
            while self._pending or self._busy:
                self._cond.wait()

    # The writer thread -------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    self._cond.wait()
                if not self._pending:
                    return
                events, self._pending = self._pending, []
                self._busy = True
                self._cond.notify_all()  # room in the queue again
            try:
                if not self._failed:
                    self._write(events)
                for event in events:
                    self._pass_on(event)
            except BaseException as exc:  # noqa: BLE001 - raised on the training thread
                self._failed, self._error = True, exc
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _write(self, events: list[RunStart | EpochEnd | TaskEnd]) -> None:
        """The events in one transaction; waits up to `db_retry_s` for a database that is
        away (not at all once the worker is shutting down), then raises. A lost claim asks
        the run to stop, and nothing more is written."""

        def write() -> bool:
            with unit_of_work(self.sessions) as session:
                return all(self._record(session, event) for event in events)

        what = "+".join(dict.fromkeys(_KINDS[type(e)] for e in events))

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
            self._failed = True
            self.request_stop(StopReason.lost)

    def _record(self, session: Session, event: RunStart | EpochEnd | TaskEnd) -> bool:
        """One event's write through `store.jobs`; False when the job is no longer ours."""
        ids = (session, self.experiment_id, self.worker)
        if isinstance(event, EpochEnd):
            return jobs.record_epoch(
                *ids, task=event.task, epoch=event.epoch, task_epoch=event.task_epoch,
                loss=event.loss, val_accuracy=list(event.val_accuracy),
                train_s=event.train_s, eval_s=event.eval_s,
            )  # fmt: skip
        if isinstance(event, TaskEnd):
            return jobs.record_task(
                *ids, task=event.task, test_accuracy=list(event.test_accuracy),
                fisher_s=event.fisher_s, frozen_fraction=event.frozen_fraction,
            )  # fmt: skip
        return jobs.record_run_start(
            *ids, num_tasks=event.num_tasks, total_epochs=sum(event.epochs_per_task),
            first_task=event.first_task, device=self.device,
        )  # fmt: skip

    def _pass_on(self, event: RunStart | EpochEnd | TaskEnd) -> None:
        """The event to the followers, then its log line (written: it names the job, so the
        job's log keeps it although this is not the job's thread)."""
        for follower in self.followers:
            getattr(follower, _HANDLERS[type(event)])(event)
        if isinstance(event, EpochEnd):
            log.info(
                "event=epoch experiment_id=%s task=%s epoch=%s loss=%.4f train_s=%.2f",
                self.experiment_id, event.task, event.epoch, event.loss, event.train_s,
            )  # fmt: skip
        elif isinstance(event, TaskEnd):
            log.info(
                "event=task_end experiment_id=%s task=%s test_accuracy=%s",
                self.experiment_id, event.task, [round(a, 4) for a in event.test_accuracy],
            )  # fmt: skip
        else:
            log.info(
                "event=run_start experiment_id=%s num_tasks=%s first_task=%s device=%r",
                self.experiment_id, event.num_tasks, event.first_task, self.device,
            )  # fmt: skip

    def where(self) -> str:
        """Where the run is, for messages: "task 2, epoch 3" (the epoch in progress)."""
        if self.epoch == 0:
            return "before the first epoch ended"
        return f"after task {self.task}, epoch {self.epoch}"


_KINDS = {RunStart: "run_start", EpochEnd: "epoch", TaskEnd: "task"}
_HANDLERS = {RunStart: "on_run_start", EpochEnd: "on_epoch_end", TaskEnd: "on_task_end"}
