"""A job's captured log lines (`experiment_logs`): the worker appends, the API reads.

Lines are read in id order (the order the worker wrote them), after a cursor: the id of
the last line a reader has (`after_id`), so following a log is "read after the last id"
again and again. The worker ends each attempt with one line of level `END_LEVEL`; a log
is complete once the job has finished and its last attempt's `END` line is stored (see
`is_complete`).

Functions here flush but never commit: the caller's unit of work does (see `store.db`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from store.models import Experiment, utcnow
from store.records import ExperimentLog
from store.updates import CHUNK

__all__ = [
    "END_LEVEL",
    "SETTLE_S",
    "LogCount",
    "LogLine",
    "append_lines",
    "count",
    "is_complete",
    "last_lines",
    "marks",
    "read_lines",
]

#: The level of the line that closes an attempt's log ("attempt 2 ended: failed ...").
END_LEVEL = "END"
#: Seconds after a job finished when its log counts as complete even without its `END`
#: line (a worker that died, or a database that was away when the worker wrote it).
SETTLE_S = 10.0


@dataclass(frozen=True)
class LogLine:
    """One line to append: its level ("INFO", "WARNING", ..., END_LEVEL), text and time."""

    level: str
    message: str
    created_at: datetime


@dataclass(frozen=True)
class LogCount:
    """What a job's log holds: lines, and characters of text (the worker's byte cap)."""

    lines: int
    chars: int


def append_lines(
    session: Session, experiment_id: int, attempt: int, lines: Sequence[LogLine]
) -> None:
    """Append `lines` (in order) to the job's log, as attempt `attempt`; one statement."""
    if not lines:
        return
    session.execute(
        insert(ExperimentLog),
        [
            {
                "experiment_id": experiment_id,
                "attempt": attempt,
                "level": line.level[:16],
                "message": line.message,
                "created_at": line.created_at,
            }
            for line in lines
        ],
    )


def read_lines(
    session: Session, experiment_id: int, after_id: int = 0, limit: int = 1000
) -> list[ExperimentLog]:
    """The job's lines with an id above `after_id`, oldest first, at most `limit`."""
    return list(
        session.scalars(
            select(ExperimentLog)
            .where(ExperimentLog.experiment_id == experiment_id, ExperimentLog.id > after_id)
            .order_by(ExperimentLog.id)
            .limit(limit)
        )
    )


def last_lines(session: Session, experiment_id: int, limit: int) -> list[ExperimentLog]:
    """The job's newest `limit` lines, oldest first."""
    rows = session.scalars(
        select(ExperimentLog)
        .where(ExperimentLog.experiment_id == experiment_id)
        .order_by(ExperimentLog.id.desc())
        .limit(limit)
    )
    return list(reversed(list(rows)))


def count(session: Session, experiment_id: int) -> LogCount:
    """How many lines (and characters) the job's log holds, every attempt together."""
    lines, chars = session.execute(
        select(
            func.count(ExperimentLog.id),
            func.coalesce(func.sum(func.length(ExperimentLog.message)), 0),
        ).where(ExperimentLog.experiment_id == experiment_id)
    ).one()
    return LogCount(int(lines), int(chars))


def is_complete(session: Session, experiment: Experiment, now: datetime | None = None) -> bool:
    """True when no more lines will come: the job has finished, and either its last attempt
    wrote its `END` line, it never ran, or it finished more than SETTLE_S seconds ago."""
    if not experiment.status.finished:
        return False
    if not experiment.attempts or experiment.finished_at is None:
        return True
    if (now or utcnow()) - experiment.finished_at > timedelta(seconds=SETTLE_S):
        return True
    ended = session.scalar(
        select(ExperimentLog.id)
        .where(
            ExperimentLog.experiment_id == experiment.id,
            ExperimentLog.level == END_LEVEL,
            ExperimentLog.attempt >= experiment.attempts,
        )
        .limit(1)
    )
    return ended is not None


def marks(session: Session, ids: Sequence[int]) -> dict[int, tuple[Any, ...]]:
    """{id: (status, newest log line id)} of those of `ids` that exist (what the API's
    shared poller compares to wake a log stream)."""
    newest = (
        select(func.max(ExperimentLog.id))
        .where(ExperimentLog.experiment_id == Experiment.id)
        .scalar_subquery()
    )
    ids = list(ids)
    found: dict[int, tuple[Any, ...]] = {}
    for start in range(0, len(ids), CHUNK):
        rows = session.execute(
            select(Experiment.id, Experiment.status, newest).where(
                Experiment.id.in_(ids[start : start + CHUNK])
            )
        )
        for eid, status, line_id in rows:
            found[eid] = (getattr(status, "value", status), line_id)
    return found
