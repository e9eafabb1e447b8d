"""Experiments: submitting, reading, listing, cancelling, and the metrics document.

Functions take a Session, flush, and never commit: the caller's unit of work does.
Claiming (`store.claims`), heartbeats and writing metrics (`store.jobs`) belong to the worker.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, joinedload

from store.errors import (
    ActiveJobCapReached,
    ExperimentFinished,
    ExperimentNotFound,
    InvalidCursor,
    InvalidInput,
)
from store.models import (
    EpochMetric,
    Experiment,
    ExperimentTag,
    JobStatus,
    TaskResult,
    User,
    utcnow,
)
from store.vocabulary import ACTIVE, QUEUES
from store.webhooks import enqueue_for_experiment

_CURSOR_PREFIX = "e:"


def queue_for(spec: dict[str, Any]) -> str:
    """The queue of a spec: "gpu" for device "gpu", "cpu" for "cpu" and "any"."""
    return "gpu" if spec.get("device") == "gpu" else "cpu"


def count_active_jobs(session: Session, user: User) -> int:
    """How many of `user`'s experiments are queued or running."""
    return (
        session.scalar(
            select(func.count())
            .select_from(Experiment)
            .where(Experiment.owner_id == user.id, Experiment.status.in_(ACTIVE))
        )
        or 0
    )


def create_experiment(
    session: Session,
    owner: User,
    spec: dict[str, Any],
    *,
    num_tasks: int,
    total_epochs: int,
    name: str | None = None,
    tags: Iterable[str] | None = None,
    priority: int | None = None,
    max_active: int | None = None,
    project: str | None = None,
    rerun_of: int | None = None,
) -> Experiment:
    """A new queued experiment for a validated spec (plain JSON dict).

    `name`, `tags` and `priority` default to the spec's own fields, `project` to the
    owner's name; `rerun_of` is the id of the run this one repeats. With `max_active`,
    raises ActiveJobCapReached when `owner` already has that many queued or running jobs;
    on PostgreSQL the owner's row is locked first, so concurrent submissions cannot
    overshoot the cap.
    """
    if max_active is not None:
        session.execute(select(User.id).where(User.id == owner.id).with_for_update())
        active = count_active_jobs(session, owner)
        if active >= max_active:
            raise ActiveJobCapReached(owner.name, active, max_active)
    tag_list = list(dict.fromkeys(tags if tags is not None else spec.get("tags") or []))
    experiment = Experiment(
        owner=owner,
        name=name if name is not None else spec.get("name"),
        spec=spec,
        status=JobStatus.queued,
        queue=queue_for(spec),
        priority=priority if priority is not None else int(spec.get("priority") or 0),
        created_at=utcnow(),
        num_tasks=num_tasks,
        total_epochs=total_epochs,
        tags=[ExperimentTag(tag=t) for t in tag_list],
        project=project or owner.name,
        rerun_of=rerun_of,
    )
    session.add(experiment)
    session.flush()
    return experiment


def get_experiment(session: Session, experiment_id: int) -> Experiment:
    """The experiment with its owner and tags loaded; raises ExperimentNotFound.

    One query: owner and tags are joined in (the tags' default select-in load would cost a
    second round trip on every GET).
    """
    experiment = (
        session.execute(
            select(Experiment)
            .options(joinedload(Experiment.owner), joinedload(Experiment.tags))
            .where(Experiment.id == experiment_id)
        )
        .unique()
        .scalar_one_or_none()
    )
    if experiment is None:
        raise ExperimentNotFound(experiment_id)
    return experiment


def find_experiments(session: Session, ids: Sequence[int]) -> dict[int, Experiment]:
    """{id: experiment} of those of `ids` that exist (owners loaded), in id order; unknown
    ids are simply absent (the caller decides whether that is an error)."""
    if not ids:
        return {}
    rows = session.scalars(
        select(Experiment)
        .options(joinedload(Experiment.owner))
        .where(Experiment.id.in_(list(ids)))
        .order_by(Experiment.id)
    ).unique()
    return {e.id: e for e in rows}


class InvalidFilter(InvalidInput):
    """A listing filter no backend can compare (the same refusal on every backend)."""

    def __init__(self, field: str, why: str):
        super().__init__(f"{field}: {why}")
        self.field = field


@dataclass(frozen=True)
class ExperimentPage:
    """One page of a listing; `next_cursor` is None on the last page."""

    items: list[Experiment]
    next_cursor: str | None


def encode_cursor(last_id: int) -> str:
    """The opaque cursor that continues a listing after experiment `last_id`."""
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The experiment id a cursor continues after; raises InvalidCursor."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        text = base64.urlsafe_b64decode(padded.encode("ascii")).decode("ascii")
        if not text.startswith(_CURSOR_PREFIX):
            raise ValueError(text)
        last_id = int(text.removeprefix(_CURSOR_PREFIX))
        if not 1 <= last_id <= 2**31 - 1:  # ids are PostgreSQL integers; SQLite overflows
            raise ValueError(text)
        return last_id
    except (ValueError, UnicodeError, binascii.Error) as exc:
        raise InvalidCursor(cursor) from exc


def list_experiments(
    session: Session,
    *,
    status: JobStatus | None = None,
    tag: str | None = None,
    owner: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> ExperimentPage:
    """Experiments newest first, filtered by status, tag and owner name.

    Keyset pagination on the id (no OFFSET): pass the returned `next_cursor` to get the
    next page. Raises InvalidCursor for a cursor this function did not make.
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    for field, value in (("tag", tag), ("owner", owner)):
        if value is not None and "\x00" in value:  # PostgreSQL refuses it, SQLite would match
            raise InvalidFilter(field, "must not contain NUL bytes (\\u0000)")
    query = select(Experiment).options(joinedload(Experiment.owner))
    if status is not None:
        query = query.where(Experiment.status == status)
    if tag is not None:
        query = query.where(
            Experiment.id.in_(select(ExperimentTag.experiment_id).where(ExperimentTag.tag == tag))
        )
    if owner is not None:
        query = query.where(Experiment.owner_id.in_(select(User.id).where(User.name == owner)))
    if cursor:
        query = query.where(Experiment.id < decode_cursor(cursor))
    rows = list(session.scalars(query.order_by(Experiment.id.desc()).limit(limit + 1)))
    items = rows[:limit]
    next_cursor = encode_cursor(items[-1].id) if len(rows) > limit else None
    return ExperimentPage(items=items, next_cursor=next_cursor)


def request_cancel(session: Session, experiment_id: int) -> Experiment:
    """Cancel an experiment and return it.

    Queued → cancelled at once (one conditional UPDATE, so a worker claiming it at the
    same moment either gets it first or sees it cancelled). Running → `cancel_requested`
    is set and the worker stops at its next check. Finished → ExperimentFinished.
    Unknown id → ExperimentNotFound.
    """
    now = utcnow()
    cancelled = session.execute(
        update(Experiment)
        .where(Experiment.id == experiment_id, Experiment.status == JobStatus.queued)
        .values(status=JobStatus.cancelled, finished_at=now, cancel_requested=True)
        .execution_options(synchronize_session=False)
    ).rowcount
    if cancelled:  # its webhook events, in this transaction (the outbox)
        enqueue_for_experiment(session, experiment_id)
    else:
        session.execute(
            update(Experiment)
            .where(Experiment.id == experiment_id, Experiment.status == JobStatus.running)
            .values(cancel_requested=True)
            .execution_options(synchronize_session=False)
        )
    session.expire_all()
    experiment = get_experiment(session, experiment_id)
    if not cancelled and experiment.status.finished:
        raise ExperimentFinished(experiment_id, experiment.status.value)
    return experiment


def mark_wakeup_sent(session: Session, experiment_ids: Sequence[int], *, sent: bool = True) -> None:
    """Record that a wake-up was sent for these experiments (now), or with `sent=False`
    that none was (so a worker re-sends one at its next pass)."""
    if experiment_ids:
        session.execute(
            update(Experiment)
            .where(Experiment.id.in_(list(experiment_ids)))
            .values(wakeup_sent_at=utcnow() if sent else None)
            .execution_options(synchronize_session=False)
        )


def metrics_document(session: Session, experiment: Experiment) -> dict[str, Any]:
    """The result document of an experiment, in the one shape shared with `ewc run --json`.

    {"spec", "epochs": [{"task", "epoch", "task_epoch", "loss", "val_accuracy",
    "train_s", "eval_s"}, ...], "accuracy_matrix": [row per finished task], "summary",
    "timings", "fisher", "versions"}. Accuracies are fractions, times seconds. Partial for a
    job still running (or failed): the rows written so far. Two queries.
    """
    epochs = session.execute(
        select(
            EpochMetric.task,
            EpochMetric.epoch,
            EpochMetric.task_epoch,
            EpochMetric.loss,
            EpochMetric.val_accuracy,
            EpochMetric.train_s,
            EpochMetric.eval_s,
        )
        .where(EpochMetric.experiment_id == experiment.id)
        .order_by(EpochMetric.epoch)
    ).all()
    tasks = session.execute(
        select(TaskResult.task, TaskResult.test_accuracy, TaskResult.fisher_s)
        .where(TaskResult.experiment_id == experiment.id)
        .order_by(TaskResult.task)
    ).all()
    timings: dict[str, Any] = {
        "train_epoch_s": [row.train_s for row in epochs],
        "eval_s": [row.eval_s for row in epochs],
        "fisher_s": [row.fisher_s for row in tasks if row.fisher_s is not None],
        "total_s": None,
    }
    timings.update(experiment.timings or {})
    return {
        "spec": experiment.spec,
        "epochs": [row._asdict() for row in epochs],
        "accuracy_matrix": [list(row.test_accuracy) for row in tasks],
        "summary": experiment.summary,
        "timings": timings,
        "fisher": (experiment.spec or {}).get("fisher"),
        "versions": experiment.versions or {},
    }


def status_counts(session: Session) -> dict[str, int]:
    """Number of experiments in each status (every status present, zeros included)."""
    counts = {s.value: 0 for s in JobStatus}
    for status, n in session.execute(
        select(Experiment.status, func.count()).group_by(Experiment.status)
    ):
        counts[JobStatus(status).value] = n
    return counts


def queue_depths(session: Session) -> dict[str, dict[str, int]]:
    """Per queue: {"waiting": queued jobs, "running": running jobs} (cpu and gpu always)."""
    depths = {q: {"waiting": 0, "running": 0} for q in QUEUES}
    for queue, status, n in session.execute(
        select(Experiment.queue, Experiment.status, func.count())
        .where(Experiment.status.in_(ACTIVE))
        .group_by(Experiment.queue, Experiment.status)
    ):
        key = "waiting" if JobStatus(status) is JobStatus.queued else "running"
        depths.setdefault(queue, {"waiting": 0, "running": 0})[key] = n
    return depths
