"""Watching a running job from the side: its heartbeat, and a cancel noticed within a batch.

The training thread only ever reads a flag (`StoreCallback.should_stop()`, polled by the
trainer before every compiled training call: every batch of a conv model, a few batches of
an mlp, see `EWC_STEPS_PER_CALL`). This module keeps that flag fresh: a `JobWatch` thread asks
the database every `CANCEL_POLL_S` seconds whether the job must stop (one read of one row,
`store.jobs.stop_wanted`), and refreshes the job's heartbeat every `EWC_HEARTBEAT_S`
seconds. So a cancel is seen at the first call boundary after at most `CANCEL_POLL_S`
seconds, whatever the heartbeat interval, and never costs a query per batch.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from typing import Protocol

from sqlalchemy.orm import Session, sessionmaker

from store import jobs
from store.db import make_session_factory, read_engine, unit_of_work

log = logging.getLogger("ewc.worker")

#: Seconds between two looks at whether a running job was cancelled (or taken over).
CANCEL_POLL_S = 0.25


class StopReason(str, enum.Enum):
    """Why a running job was asked to stop before the trainer finished."""

    cancel = "cancel"
    time_limit = "time_limit"
    lost = "lost"  # another worker took the job over (our heartbeat expired)
    shutdown = "shutdown"  # this worker is shutting down


class Watched(Protocol):
    """What the watch needs of the job's callback."""

    experiment_id: int
    worker: str
    sessions: sessionmaker[Session]
    batches: int
    stop_reason: StopReason | None

    def request_stop(self, reason: StopReason) -> None: ...


class JobWatch(threading.Thread):
    """Polls for a cancel (or a lost claim) every `poll_s` s and beats every `interval_s` s."""

    def __init__(self, callback: Watched, interval_s: float, poll_s: float = CANCEL_POLL_S):
        super().__init__(name=f"job-watch-{callback.experiment_id}", daemon=True)
        self.callback, self.interval_s = callback, interval_s
        self.poll_s = min(poll_s, interval_s)
        # The look is a pure read: on SQLite it must not take the write lock four times a second.
        self.read_sessions = make_session_factory(read_engine(callback.sessions.kw["bind"]))
        self.done = threading.Event()
        self._failing = False

    def beat(self) -> None:
        """One heartbeat: refresh it, and ask the trainer to stop if the job must end."""
        cb = self.callback
        with unit_of_work(cb.sessions) as session:
            stop = jobs.heartbeat(session, cb.experiment_id, cb.worker)
            ours = stop and jobs.still_owned(session, cb.experiment_id, cb.worker)
        if stop:
            self._ask_stop(StopReason.cancel if ours else StopReason.lost)

    def look(self) -> None:
        """One cheap read: does the job still run here, and did nobody cancel it?"""
        cb = self.callback
        with unit_of_work(self.read_sessions) as session:
            why = jobs.stop_wanted(session, cb.experiment_id, cb.worker)
        if why is not None:
            self._ask_stop(StopReason(why))

    def _ask_stop(self, reason: StopReason) -> None:
        if self.callback.stop_reason is not None:
            return  # already asked (the trainer stops at its next batch boundary)
        log.info(
            "event=stop_seen experiment_id=%s reason=%s batches=%s",
            self.callback.experiment_id,
            reason.value,
            self.callback.batches,
        )
        self.callback.request_stop(reason)

    def run(self) -> None:
        next_beat = time.monotonic() + self.interval_s
        while not self.done.wait(self.poll_s):
            try:
                if time.monotonic() >= next_beat:
                    next_beat = time.monotonic() + self.interval_s
                    self.beat()
                else:
                    self.look()
                self._failing = False
            except Exception as exc:  # noqa: BLE001 - database briefly away: keep training
                if not self._failing:  # once per outage, not four times a second
                    log.warning(
                        "event=heartbeat_failed experiment_id=%s error=%r",
                        self.callback.experiment_id,
                        " ".join(str(exc).split())[:300] or type(exc).__name__,
                    )
                self._failing = True

    def stop(self) -> None:
        """End the thread (waits for a beat in progress)."""
        self.done.set()
        self.join(timeout=30)
