"""A job's own log: its log lines and traceback captured while it runs, stored through the
store (`store.logs`), so `GET /v1/experiments/{id}/logs` shows them from any host.

`captured` wraps `worker.runner.run_job`: for the duration of one job a `JobLog` handler
sits on the root logger and keeps

- the records of the job's thread: this project's loggers (`ewc.*`) at the worker's level
  (`EWC_LOG_LEVEL`), every other logger (TensorFlow, Keras, absl) at WARNING and above,
  and Python warnings (`warnings.warn`, as Keras gives them);
- records of other threads that name the job (`experiment_id=<id>`: its heartbeat);
- a failure's traceback (`traceback.format_exception`), one line of its own.

Training never waits for the database: a record is formatted and appended to a list in
memory; a thread writes the list in one statement every FLUSH_S seconds (sooner once
FLUSH_LINES are waiting), and at the job's end. A write that fails is tried again at the
next flush (the list is bounded by the cap), the last one within RETRY_S; what still
cannot be written is dropped and counted in the worker's own log, and the job goes on.

Bounded: once the job holds `EWC_JOB_LOG_MAX_LINES` lines or `EWC_JOB_LOG_MAX_BYTES` bytes
(every attempt together) the rest are counted, not kept, and one "... N more lines not
kept" line ends the attempt's log. A traceback is kept even then (a few, each cut to
TRACEBACK_MAX_CHARS). Every attempt ends with one `END` line ("attempt 2 ended: failed
..."), which tells readers the log is complete (`store.logs.is_complete`).
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import traceback
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from common.settings import Settings
from store import logs as store_logs
from store.db import unit_of_work
from store.logs import END_LEVEL, LogCount, LogLine
from store.models import Experiment
from worker.retry import DATABASE_AWAY, one_line, retry

__all__ = ["FLUSH_LINES", "FLUSH_S", "JobLog", "captured"]

#: The handler's own diagnostics: never captured (a failed write must not feed itself).
log = logging.getLogger("ewc.joblog")

#: Seconds between two writes of the captured lines.
FLUSH_S = 1.0
#: Lines waiting that trigger a write before FLUSH_S is up.
FLUSH_LINES = 200
#: Seconds the last write of a job waits for a database that is away.
RETRY_S = 3.0
#: Longest single line kept (characters); a longer one is cut.
LINE_MAX_CHARS = 16_000
#: Longest traceback kept (its end: where it was raised).
TRACEBACK_MAX_CHARS = 64_000
#: Tracebacks kept past the cap.
TRACEBACKS_PAST_CAP = 3


def _cut(text: str, limit: int, *, keep_end: bool = False) -> str:
    if len(text) <= limit:
        return text
    more = len(text) - limit
    if keep_end:
        return f"… ({more} characters before)\n" + text[-limit:]
    return text[:limit] + f"… ({more} more characters)"


class JobLog(logging.Handler):
    """Captures one job's log records into its stored log (see the module)."""

    def __init__(
        self,
        experiment_id: int,
        attempt: int,
        sessions: sessionmaker[Session],
        *,
        max_lines: int,
        max_bytes: int,
        stored: LogCount | None = None,
        flush_s: float = FLUSH_S,
        flush_lines: int = FLUSH_LINES,
        retry_s: float = RETRY_S,
        interrupt: threading.Event | None = None,
    ):
        super().__init__(level=logging.NOTSET)
        self.experiment_id = experiment_id
        self.attempt = attempt
        self.sessions = sessions
        self.max_lines = max_lines
        self.max_bytes = max_bytes
        self.flush_s = flush_s
        self.flush_lines = flush_lines
        self.retry_s = retry_s
        self.interrupt = interrupt
        self.job_thread = threading.get_ident()
        self.kept_lines, self.kept_bytes = (stored.lines, stored.chars) if stored else (0, 0)
        self.not_kept = 0  # past the cap
        self.dropped = 0  # could not be written
        self.tracebacks_past_cap = 0
        self._names_job = re.compile(rf"\bexperiment_id={experiment_id}(?!\d)")
        self._pending: list[LogLine] = []
        self._lock = threading.Lock()  # the pending list and the counters
        self._write_lock = threading.Lock()  # one write at a time, in order
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._writer: threading.Thread | None = None
        self._failing = False

    # Capturing --------------------------------------------------------------------------

    def wanted(self, record: logging.LogRecord) -> bool:
        """Whether `record` belongs in this job's log."""
        if record.name == log.name or record.name.startswith(log.name + "."):
            return False
        ours = record.name == "ewc" or record.name.startswith("ewc.")
        if not ours and record.levelno < logging.WARNING:
            return False
        if record.thread == self.job_thread:
            return True
        return bool(self._names_job.search(record.getMessage()))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if not self.wanted(record):
                return
            message = f"{record.name} {record.getMessage()}"
            has_traceback = record.exc_info is not None and record.exc_info[1] is not None
            if has_traceback:
                message = (
                    _cut(message, LINE_MAX_CHARS)
                    + "\n"
                    + _cut(
                        "".join(traceback.format_exception(*record.exc_info)).rstrip(),
                        TRACEBACK_MAX_CHARS,
                        keep_end=True,
                    )
                )
            else:
                message = _cut(message, LINE_MAX_CHARS)
            when = datetime.fromtimestamp(record.created, UTC)
            self.add(LogLine(record.levelname, message, when), traceback=has_traceback)
        except Exception:  # noqa: BLE001 - a log line must never break the job
            self.handleError(record)

    def add(self, line: LogLine, *, traceback: bool = False) -> bool:
        """Queue `line` for writing, unless the cap is reached (then count it); True if kept."""
        size = len(line.message.encode("utf-8", "replace"))
        with self._lock:
            full = self.kept_lines >= self.max_lines or self.kept_bytes + size > self.max_bytes
            if full and not (traceback and self.tracebacks_past_cap < TRACEBACKS_PAST_CAP):
                self.not_kept += 1
                return False
            if full:
                self.tracebacks_past_cap += 1
            self.kept_lines += 1
            self.kept_bytes += size
            self._pending.append(line)
            many = len(self._pending) >= self.flush_lines
        if many:
            self._wake.set()
        return True

    def add_warning(self, message: Any, *args: Any) -> None:
        """Python's `warnings.showwarning`, also kept in the job's log (WARNING)."""
        text = warnings.formatwarning(message, *args).strip()
        self.add(LogLine("WARNING", f"py.warnings {text}", datetime.now(UTC)))

    # Writing ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the thread that writes every `flush_s` seconds."""
        self._writer = threading.Thread(
            target=self._run, name=f"joblog-{self.experiment_id}", daemon=True
        )
        self._writer.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_s)
            self._wake.clear()
            if not self._stop.is_set():
                self.write_pending(final=False)

    def write_pending(self, *, final: bool) -> bool:
        """Write what is waiting; True when nothing is left waiting. A write that fails
        stays waiting (to be tried at the next flush) unless `final`: the last write tries
        within `retry_s`, then drops the lines and counts them."""
        with self._write_lock:
            with self._lock:
                batch, self._pending = self._pending, []
            if not batch:
                return True

            def write() -> None:
                with unit_of_work(self.sessions) as session:
                    store_logs.append_lines(session, self.experiment_id, self.attempt, batch)

            try:
                if final:
                    retry(write, retry_on=DATABASE_AWAY, budget_s=self.retry_s,
                          first_pause_s=0.2, interrupt=self.interrupt)  # fmt: skip
                else:
                    write()
            except SQLAlchemyError as exc:
                away = isinstance(exc, DATABASE_AWAY)
                if away and not final:
                    with self._lock:  # back in front: tried again at the next flush
                        self._pending[:0] = batch
                    if not self._failing:
                        log.warning("event=job_log_write_failed experiment_id=%s lines=%s "
                                    "error=%r (tried again)", self.experiment_id, len(batch),
                                    one_line(exc))  # fmt: skip
                    self._failing = True
                    return False
                self.dropped += len(batch)
                log.warning("event=job_log_dropped experiment_id=%s lines=%s error=%r",
                            self.experiment_id, len(batch), one_line(exc))  # fmt: skip
                return False
            self._failing = False
            return True

    def close_attempt(self, ending: str) -> None:
        """End the attempt's log: the "not kept" line if any were, the `END` line, and the
        last write (in this thread). Stops the writing thread."""
        self._stop.set()
        self._wake.set()
        if self._writer is not None:
            self._writer.join(timeout=30)
        now = datetime.now(UTC)
        with self._lock:
            if self.not_kept:
                self._pending.append(LogLine(
                    "WARNING",
                    f"... {self.not_kept} more lines not kept (the log of a job keeps at most "
                    f"{self.max_lines} lines, {self.max_bytes} bytes: EWC_JOB_LOG_MAX_LINES, "
                    "EWC_JOB_LOG_MAX_BYTES)",
                    now,
                ))  # fmt: skip
            self._pending.append(LogLine(END_LEVEL, ending, now))
        self.write_pending(final=True)
        super().close()


def _stored(sessions: sessionmaker[Session], experiment_id: int) -> LogCount:
    """What earlier attempts left in the job's log (nothing known if the database is away)."""
    try:
        with unit_of_work(sessions) as session:
            return store_logs.count(session, experiment_id)
    except SQLAlchemyError as exc:
        log.warning("event=job_log_count_failed experiment_id=%s error=%r", experiment_id,
                    one_line(exc))  # fmt: skip
        return LogCount(0, 0)


@contextmanager
def capture(
    job: Experiment,
    *,
    settings: Settings,
    sessions: sessionmaker[Session],
    interrupt: threading.Event | None = None,
) -> Iterator[JobLog]:
    """A `JobLog` on the root logger (and Python's warnings) while the block runs; the
    caller ends it with `close_attempt` (else it is closed as "ended")."""
    handler = JobLog(
        job.id,
        job.attempts or 1,
        sessions,
        max_lines=settings.job_log_max_lines,
        max_bytes=settings.job_log_max_bytes,
        stored=_stored(sessions, job.id),
        retry_s=min(RETRY_S, settings.db_retry_s),
        interrupt=interrupt,
    )
    root = logging.getLogger()
    shown = warnings.showwarning

    def showwarning(message, category, filename, lineno, file=None, line=None) -> None:
        if threading.get_ident() == handler.job_thread:
            handler.add_warning(message, category, filename, lineno, line)
        shown(message, category, filename, lineno, file, line)

    handler.start()
    root.addHandler(handler)
    warnings.showwarning = showwarning
    try:
        yield handler
    finally:
        if warnings.showwarning is showwarning:
            warnings.showwarning = shown
        root.removeHandler(handler)
        if not handler._stop.is_set():
            handler.close_attempt(f"attempt {handler.attempt} ended")


def ending(attempt: int, worker: str, outcome: Any) -> str:
    """The `END` line of an attempt: how it ended, on which worker."""
    status = getattr(outcome.status, "value", None)
    if status is None:
        how = "claim lost" if outcome.error == "claim lost" else "handed back to the queue"
    else:
        how = status
    error = f": {outcome.error}" if status and outcome.error else ""
    return f"attempt {attempt} ended on {worker}: {how}{error}"


def captured(run: Callable[..., Any]) -> Callable[..., Any]:
    """`run_job` with the job's log captured (see the module)."""

    @functools.wraps(run)
    def run_captured(job: Experiment, *, worker: str, settings: Settings,
                     sessions: sessionmaker[Session], **kwargs: Any) -> Any:  # fmt: skip
        with capture(job, settings=settings, sessions=sessions,
                     interrupt=kwargs.get("shutting_down")) as joblog:  # fmt: skip
            try:
                outcome = run(job, worker=worker, settings=settings, sessions=sessions, **kwargs)
            except BaseException as exc:
                if isinstance(exc, Exception):  # a bug of the worker: its traceback too
                    trace = "".join(traceback.format_exception(exc)).rstrip()
                    joblog.add(LogLine("ERROR", _cut(trace, TRACEBACK_MAX_CHARS, keep_end=True),
                                       datetime.now(UTC)), traceback=True)  # fmt: skip
                joblog.close_attempt(
                    f"attempt {joblog.attempt} ended on {worker}: the worker stopped "
                    f"({one_line(exc)})"
                )
                raise
            joblog.close_attempt(ending(joblog.attempt, worker, outcome))
            return outcome

    return run_captured
