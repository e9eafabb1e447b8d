"""Who runs next: claiming jobs and finding the ones whose wake-up was lost.

The database decides who runs next. A worker woken by the broker calls `claim_next_job`,
which picks the best claimable job of its queues in one transaction and takes it with a
conditional UPDATE, so two workers (or a redelivered wake-up) can never run one job twice:

- claimable: `queued` (and no cancel asked), or `running` with an expired heartbeat
  (its worker died; the new one resumes it from its last checkpoint);
- order: priority (high first), then the owner with the fewest running jobs, then the owner
  served least recently (`users.last_claimed_at`: round robin between users, so one user's
  backlog of 100 jobs never makes another's single job wait behind it, even with a single
  worker), then age (oldest first);
- a job that already used `max_attempts` attempts is failed with a reason instead.

Once claimed, a job's heartbeats and metrics are written through `store.jobs`.
Functions here flush but never commit: the caller's unit of work does (see `store.db`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from store.jobs import is_postgres, set_where
from store.models import Experiment, JobStatus, User, utcnow
from store.webhooks import enqueue_for_experiment

#: How many candidates one claim looks at before giving up (others won races for them).
_CLAIM_TRIES = 20


@dataclass(frozen=True)
class Wakeup:
    """A job whose wake-up must be (re)sent to `queue`."""

    experiment_id: int
    queue: str
    reason: str  # "waiting" or "heartbeat expired"


def _claimable(cutoff):
    """SQL condition: queued and not cancelled, or running with a heartbeat older than cutoff."""
    return or_(
        and_(Experiment.status == JobStatus.queued, Experiment.cancel_requested.is_(False)),
        and_(
            Experiment.status == JobStatus.running,
            or_(Experiment.heartbeat_at.is_(None), Experiment.heartbeat_at < cutoff),
        ),
    )


def _candidates(session: Session, queues: list[str], cutoff, skip: set[int]):
    """The SELECT of the best claimable job (one row), locked on PostgreSQL."""
    other = aliased(Experiment)
    running_of_owner = (
        select(func.count(other.id))
        .where(other.owner_id == Experiment.owner_id, other.status == JobStatus.running)
        .correlate(Experiment)
        .scalar_subquery()
    )
    stmt = (
        select(Experiment)
        .join(User, User.id == Experiment.owner_id)
        .where(Experiment.queue.in_(queues), _claimable(cutoff))
        .order_by(
            Experiment.priority.desc(),
            running_of_owner.asc(),
            User.last_claimed_at.asc().nulls_first(),
            Experiment.created_at.asc(),
            Experiment.id.asc(),
        )
        .limit(1)
    )
    if skip:
        stmt = stmt.where(Experiment.id.not_in(skip))
    if is_postgres(session):
        # Another worker holding the row lock is claiming it right now: take the next one.
        stmt = stmt.with_for_update(skip_locked=True, of=Experiment)
    return stmt


def claim_next_job(
    session: Session,
    queues: list[str],
    worker: str,
    heartbeat_timeout_s: float,
    max_attempts: int,
) -> Experiment | None:
    """Claim the best waiting (or orphaned) job of `queues` for `worker`, or None.

    Returns the claimed experiment, now `running` with `worker`, `heartbeat_at` = now and
    `attempts` incremented (`started_at` is set on the first attempt). A `running` job whose
    heartbeat is older than `heartbeat_timeout_s` seconds is taken over (its worker died); if
    it already used `max_attempts` attempts it is failed with a reason instead, and if its
    owner asked to cancel it, it is cancelled. Flushes; the caller commits.
    """
    if not queues:
        return None
    skip: set[int] = set()
    for _ in range(_CLAIM_TRIES):
        now = utcnow()
        cutoff = now - timedelta(seconds=heartbeat_timeout_s)
        job = session.execute(_candidates(session, queues, cutoff, skip)).scalar_one_or_none()
        if job is None:
            return None
        skip.add(job.id)
        seen_status, seen_attempts, previous_worker = job.status, job.attempts, job.worker
        # The row must still be exactly what we saw: same status, same attempt count, still
        # claimable. A concurrent claim changes `attempts`, so at most one UPDATE matches.
        guard = and_(
            Experiment.id == job.id,
            Experiment.status == seen_status,
            Experiment.attempts == seen_attempts,
            _claimable(cutoff),
        )
        if seen_status == JobStatus.running and job.cancel_requested:
            if set_where(
                session,
                guard,
                status=JobStatus.cancelled,
                finished_at=now,
                error="cancelled: its worker stopped answering before the cancel took effect",
            ):
                enqueue_for_experiment(session, job.id)
            continue
        if seen_attempts >= max_attempts:
            if set_where(
                session,
                guard,
                status=JobStatus.failed,
                finished_at=now,
                error=_gave_up_reason(seen_attempts, previous_worker, job.heartbeat_at),
            ):
                enqueue_for_experiment(session, job.id)
            continue
        values: dict[str, Any] = {
            "status": JobStatus.running,
            "worker": worker,
            "heartbeat_at": now,
            "attempts": seen_attempts + 1,
        }
        if job.started_at is None:
            values["started_at"] = now
        if not set_where(session, guard, **values):
            continue  # another worker won this one; look at the next candidate
        session.execute(
            update(User)
            .where(User.id == job.owner_id)
            .values(last_claimed_at=now)
            .execution_options(synchronize_session=False)
        )
        session.refresh(job)
        return job
    return None


def is_waiting(session: Session, experiment_id: int, queues: list[str]) -> bool:
    """True when the job is `queued` on one of `queues` with no cancel asked (no row lock).

    A claim that found nothing while this is True lost to a row lock, not to another
    worker: on PostgreSQL, SKIP LOCKED passes over a row another transaction is updating
    for a moment — e.g. the API recording the wake-up it has just sent for this very job.
    """
    found = session.execute(
        select(Experiment.id).where(
            Experiment.id == experiment_id,
            Experiment.queue.in_(queues),
            Experiment.status == JobStatus.queued,
            Experiment.cancel_requested.is_(False),
        )
    ).scalar_one_or_none()
    return found is not None


def _gave_up_reason(attempts: int, worker: str | None, heartbeat_at) -> str:
    return (
        f"worker died {attempts} time{'s' if attempts != 1 else ''} while running this job "
        f"(last worker {worker or 'unknown'}, last heartbeat {heartbeat_at}); gave up after "
        f"{attempts} attempts (EWC_MAX_ATTEMPTS). The job may crash its worker (out of "
        "memory?): try a smaller batch_size or model."
    )


def jobs_needing_wakeup(
    session: Session,
    older_than_s: float,
    *,
    heartbeat_timeout_s: float | None = None,
    queues: list[str] | None = None,
    limit: int = 100,
) -> list[Wakeup]:
    """Jobs whose wake-up should be re-sent, and mark them as just woken.

    A job qualifies when it is `queued` (no cancel asked) and neither its creation nor its
    last wake-up is more recent than `older_than_s` seconds, or when it is `running` with a
    heartbeat older than `heartbeat_timeout_s` (default `older_than_s`) and no wake-up in the
    last `older_than_s` seconds. Setting `wakeup_sent_at` makes repeated passes (from several
    workers) send at most one wake-up per job per `older_than_s`. Flushes; the caller commits.
    """
    now = utcnow()
    waited = now - timedelta(seconds=older_than_s)
    expired = now - timedelta(seconds=heartbeat_timeout_s or older_than_s)
    not_recently_woken = or_(
        Experiment.wakeup_sent_at.is_(None), Experiment.wakeup_sent_at < waited
    )
    stmt = (
        select(Experiment.id, Experiment.queue, Experiment.status)
        .where(
            not_recently_woken,
            or_(
                and_(
                    Experiment.status == JobStatus.queued,
                    Experiment.cancel_requested.is_(False),
                    Experiment.created_at < waited,
                ),
                and_(
                    Experiment.status == JobStatus.running,
                    or_(Experiment.heartbeat_at.is_(None), Experiment.heartbeat_at < expired),
                ),
            ),
        )
        .order_by(Experiment.priority.desc(), Experiment.created_at.asc())
        .limit(limit)
    )
    if queues is not None:
        stmt = stmt.where(Experiment.queue.in_(queues))
    if is_postgres(session):
        stmt = stmt.with_for_update(skip_locked=True, of=Experiment)
    rows = session.execute(stmt).all()
    if not rows:
        return []
    session.execute(
        update(Experiment)
        .where(Experiment.id.in_([r.id for r in rows]))
        .values(wakeup_sent_at=now)
        .execution_options(synchronize_session=False)
    )
    return [
        Wakeup(
            r.id,
            r.queue,
            "waiting" if r.status == JobStatus.queued else "heartbeat expired",
        )
        for r in rows
    ]
