"""What is new in an experiment, for the API's event streams.

- `marks`: a cheap mark of many experiments at once — status and the numbers of the newest
  epoch and task rows — that changes whenever a stream of one of them has news;
- `rows_since`: an experiment and its epoch and task rows after a stream's cursor.

Reads only; the caller owns the session.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from store.models import EpochMetric, Experiment, TaskResult

#: Ids per query (well below every backend's limit on bound parameters).
CHUNK = 500


def marks(session: Session, ids: Sequence[int]) -> dict[int, tuple[Any, ...]]:
    """{id: (status, newest epoch, newest task)} of those of `ids` that exist."""
    newest_epoch = (
        select(func.max(EpochMetric.epoch))
        .where(EpochMetric.experiment_id == Experiment.id)
        .scalar_subquery()
    )
    newest_task = (
        select(func.max(TaskResult.task))
        .where(TaskResult.experiment_id == Experiment.id)
        .scalar_subquery()
    )
    ids = list(ids)
    found: dict[int, tuple[Any, ...]] = {}
    for start in range(0, len(ids), CHUNK):
        rows = session.execute(
            select(Experiment.id, Experiment.status, newest_epoch, newest_task).where(
                Experiment.id.in_(ids[start : start + CHUNK])
            )
        )
        for eid, status, epoch, task in rows:
            found[eid] = (str(status), epoch, task)
    return found


def rows_since(
    session: Session, experiment_id: int, epoch: int, task: int
) -> tuple[Experiment | None, list[EpochMetric], list[TaskResult]]:
    """The experiment (None when it does not exist), its epoch rows after `epoch` and its
    task rows after `task`, each in order.

    The experiment is read first: one seen finished has all its rows committed, so a
    stream that ends after this read has missed nothing stored.
    """
    experiment = session.get(Experiment, experiment_id)
    if experiment is None:
        return None, [], []
    epochs = session.scalars(
        select(EpochMetric)
        .where(EpochMetric.experiment_id == experiment_id, EpochMetric.epoch > epoch)
        .order_by(EpochMetric.epoch)
    )
    tasks = session.scalars(
        select(TaskResult)
        .where(TaskResult.experiment_id == experiment_id, TaskResult.task > task)
        .order_by(TaskResult.task)
    )
    return experiment, list(epochs), list(tasks)
