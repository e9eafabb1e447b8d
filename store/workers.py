"""Worker presence: which `ewc worker` processes are alive, what they serve and run.

Each worker upserts its row every `heartbeat_s` seconds, busy or idle (`report_presence`);
readers call a worker alive while its `last_heartbeat` is younger than the heartbeat
timeout. A worker that stops cleanly deletes its row (`remove_worker`); one killed with
SIGKILL just goes silent, and its row is forgotten a day later (`forget_dead_workers`).

Functions take a Session, flush, and never commit: the caller's unit of work does.
Times are timezone-aware UTC; ages are seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from store.models import Worker, utcnow

#: Rows of workers silent for longer than this are deleted (seconds).
FORGET_AFTER_S = 24 * 3600


@dataclass(frozen=True)
class WorkerPresence:
    """A worker as last reported: `heartbeat_age_s` is seconds since its last heartbeat."""

    name: str
    hostname: str
    queues: list[str]
    device: str
    started_at: datetime
    last_heartbeat: datetime
    heartbeat_age_s: float
    experiment_id: int | None
    jobs_run: int
    alive: bool


def report_presence(
    session: Session,
    name: str,
    *,
    hostname: str,
    queues: list[str],
    device: str,
    experiment_id: int | None,
    jobs_run: int,
) -> None:
    """Insert or refresh this worker's row with `last_heartbeat` = now."""
    now = utcnow()
    values = {
        "hostname": hostname,
        "queues": ",".join(queues),
        "device": device,
        "last_heartbeat": now,
        "experiment_id": experiment_id,
        "jobs_run": jobs_run,
    }
    changed = session.execute(
        update(Worker)
        .where(Worker.name == name)
        .values(**values)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not changed:
        session.add(Worker(name=name, started_at=now, **values))
    session.flush()


def remove_worker(session: Session, name: str) -> None:
    """Delete this worker's row (it is stopping cleanly)."""
    session.execute(delete(Worker).where(Worker.name == name))


def forget_dead_workers(session: Session, older_than_s: float = FORGET_AFTER_S) -> int:
    """Delete rows of workers silent for more than `older_than_s` seconds; how many."""
    cutoff = utcnow() - timedelta(seconds=older_than_s)
    return session.execute(delete(Worker).where(Worker.last_heartbeat < cutoff)).rowcount or 0


def list_workers(session: Session, heartbeat_timeout_s: float) -> list[WorkerPresence]:
    """Every known worker, newest heartbeat first; `alive` when younger than the timeout."""
    now = utcnow()
    rows = session.scalars(select(Worker).order_by(Worker.last_heartbeat.desc(), Worker.name))
    found = []
    for row in rows:
        age = max(0.0, (now - row.last_heartbeat).total_seconds())
        found.append(
            WorkerPresence(
                name=row.name,
                hostname=row.hostname,
                queues=[q for q in row.queues.split(",") if q],
                device=row.device,
                started_at=row.started_at,
                last_heartbeat=row.last_heartbeat,
                heartbeat_age_s=age,
                experiment_id=row.experiment_id,
                jobs_run=row.jobs_run,
                alive=age <= heartbeat_timeout_s,
            )
        )
    return found
