"""Aggregates for Prometheus, computed by the database at scrape time.

Job and epoch durations are observed by workers, possibly on many hosts; rather than each
worker exposing its own histogram, the API derives both histograms from what the workers
already store (`experiments.started_at/finished_at`, `epoch_metrics.train_s/eval_s`), so
one scrape of any API replica gives the whole fleet's numbers. One grouped query each.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from store.models import EpochMetric, Experiment, JobStatus
from store.vocabulary import FINISHED

#: Upper bounds (seconds) of the job duration buckets: 1 s … 1 day.
JOB_BUCKETS_S: tuple[float, ...] = (
    1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400,
)
#: Upper bounds (seconds) of the epoch duration buckets: 50 ms … 10 min.
EPOCH_BUCKETS_S: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 600)


@dataclass(frozen=True)
class Histogram:
    """Cumulative counts per bucket bound (same order as the bounds), total count and sum."""

    bounds: tuple[float, ...]
    cumulative: list[int]
    count: int
    sum: float


def _seconds_between(session: Session, start, end):
    """SQL expression: seconds from `start` to `end` (PostgreSQL or SQLite)."""
    if session.get_bind().dialect.name == "postgresql":
        return func.extract("epoch", end - start)
    return (func.julianday(end) - func.julianday(start)) * 86400.0


def _bucket_columns(value, bounds: Sequence[float]) -> list:
    return [func.sum(case((value <= b, 1), else_=0)) for b in bounds]


def job_duration_histograms(
    session: Session, bounds: tuple[float, ...] = JOB_BUCKETS_S
) -> dict[str, Histogram]:
    """Per final status: the histogram of wall time from first start to finish (seconds).

    A job resumed after its worker died counts the time it waited to be taken up again.
    """
    seconds = _seconds_between(session, Experiment.started_at, Experiment.finished_at)
    rows = session.execute(
        select(
            Experiment.status,
            func.count(),
            func.coalesce(func.sum(seconds), 0.0),
            *_bucket_columns(seconds, bounds),
        )
        .where(Experiment.started_at.is_not(None), Experiment.finished_at.is_not(None))
        .group_by(Experiment.status)
    ).all()
    found = {
        JobStatus(status).value: Histogram(
            bounds, [int(n or 0) for n in buckets], int(count), float(total)
        )
        for status, count, total, *buckets in rows
    }
    for status in FINISHED:
        found.setdefault(status.value, Histogram(bounds, [0] * len(bounds), 0, 0.0))
    return found


def epoch_duration_histogram(
    session: Session, bounds: tuple[float, ...] = EPOCH_BUCKETS_S
) -> Histogram:
    """Histogram of every stored epoch's duration: training plus validation (seconds)."""
    seconds = EpochMetric.train_s + EpochMetric.eval_s
    count, total, *buckets = session.execute(
        select(func.count(), func.coalesce(func.sum(seconds), 0.0), *_bucket_columns(seconds, bounds))
    ).one()
    return Histogram(bounds, [int(n or 0) for n in buckets], int(count), float(total))
