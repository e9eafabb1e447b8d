"""How a job's run ends in the database: its final status, or its hand-back to the queue.

`worker.runner` decides which ending a run gets; this module writes it, waiting (through
`worker.retry.retry`) for a database that is briefly away:

- `finish`: `succeeded`, `failed` or `cancelled`, with the error or the summary;
- `stopped`: the ending of a run the trainer stopped early (cancel, time limit, worker
  shutdown, lost claim), after `StoreCallback.should_stop()` said so;
- `release`: a worker shutting down hands its job back (`queued`), to be resumed from its
  last checkpoint by the next worker.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from store import jobs, webhooks
from store.db import unit_of_work
from store.models import JobStatus
from worker.callback import StoreCallback
from worker.retry import DATABASE_AWAY, one_line, retry
from worker.watch import StopReason

log = logging.getLogger("ewc.worker")

#: How long a shutting-down worker tries to hand its job back to a database that is away.
RELEASE_RETRY_S = 5.0
#: Tries of a final write whatever its error, before only a database away is waited for.
FINISH_MIN_TRIES = 3


@dataclass(frozen=True)
class Outcome:
    """How a job ended: its final status (None: handed back or lost) and the error."""

    status: JobStatus | None
    error: str | None = None


def finish(
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
    is retried for `retry_s` seconds (at least FINISH_MIN_TRIES tries, whatever the error),
    then the error is raised (the job stays `running`, and is resumed once its heartbeat
    has expired)."""

    def write() -> bool:
        with unit_of_work(sessions) as session:
            ours = jobs.finish_job(session, experiment_id, worker, status, error=error, **values)
            if ours:  # its webhook events, in the same transaction (the outbox)
                webhooks.enqueue_for_experiment(session, experiment_id)
            return ours

    def failed(exc: Exception, tries: int, _pause: float, _retrying: bool) -> None:
        log.warning(
            "event=finish_failed experiment_id=%s attempt=%s error=%r",
            experiment_id,
            tries,
            one_line(exc),
        )

    ours = retry(
        write,
        retry_on=DATABASE_AWAY,
        budget_s=retry_s,
        min_tries=FINISH_MIN_TRIES,
        on_failure=failed,
    )
    if not ours:
        log.warning("event=finish_skipped experiment_id=%s (claim lost)", experiment_id)
        return Outcome(None, "claim lost")
    log.info(
        "event=job_finished experiment_id=%s status=%s error=%r", experiment_id, status.value, error
    )
    return Outcome(status, error)


def stopped(
    experiment_id: int,
    worker: str,
    sessions: sessionmaker[Session],
    callback: StoreCallback,
    limit: int,
) -> Outcome:
    """The ending of a run the trainer stopped for `callback.stop_reason` (`limit`: the
    job's time limit in seconds, for the message)."""
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
        return finish(
            experiment_id,
            worker,
            sessions,
            JobStatus.cancelled,
            error=f"cancelled on request {where}",
            retry_s=callback.db_retry_s,
        )
    if reason is StopReason.time_limit:
        return finish(
            experiment_id,
            worker,
            sessions,
            JobStatus.failed,
            error=f"time limit of {limit} s reached {where}; ask for a larger time_limit_s "
            "(up to the server's EWC_JOB_TIME_LIMIT_S) or fewer epochs",
            retry_s=callback.db_retry_s,
        )
    if reason is StopReason.shutdown:
        released = release(experiment_id, worker, sessions)
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


def release(experiment_id: int, worker: str, sessions: sessionmaker[Session]) -> bool | None:
    """Hand the job back on shutdown; None when the database stays away RELEASE_RETRY_S
    (a host shutting down stops it too): the worker exits anyway, the job stays `running`
    and is taken over once its heartbeat has expired."""

    def write() -> bool:
        with unit_of_work(sessions) as session:
            return jobs.release_job(session, experiment_id, worker)

    try:
        return retry(write, retry_on=DATABASE_AWAY, budget_s=RELEASE_RETRY_S, growth=1.0)
    except DATABASE_AWAY as exc:
        log.warning(
            "event=job_release_failed experiment_id=%s worker=%s error=%r "
            "(the job is taken over once its heartbeat expires)",
            experiment_id,
            worker,
            one_line(exc)[:200],
        )
        return None
