"""Managing runs after the fact: edit, archive, restore, purge, cancel a sweep's points.

Functions take a Session, flush, and never commit: the caller's unit of work does. A job
that is queued or running is never archived or purged (`ExperimentActive`): the check is
part of the write itself (a conditional UPDATE or DELETE), so a job claimed at the same
moment cannot slip through. Re-running is a submission (`api.submission`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import delete, update
from sqlalchemy.orm import Session

from store.errors import Conflict, ExperimentFinished
from store.experiments import get_experiment, request_cancel
from store.models import EpochMetric, Experiment, ExperimentTag, TaskResult, User, utcnow
from store.records import ExperimentLog
from store.sweeps import get_sweep, sweep_experiments
from store.vocabulary import ACTIVE

#: Leave a field as it is (`edit_experiment`): None means "clear it".
UNCHANGED: object = object()


class ExperimentActive(Conflict):
    """An archive or purge of a job that is queued or running."""

    def __init__(self, experiment_id: int, status: str, action: str):
        super().__init__(
            f"experiment {experiment_id} is {status}; cancel it first (ewc cancel "
            f"{experiment_id}, or POST /v1/experiments/{experiment_id}/cancel), then {action} "
            "it once it has stopped"
        )
        self.experiment_id, self.status = experiment_id, status


def edit_experiment(
    session: Session,
    experiment_id: int,
    *,
    name: str | None | object = UNCHANGED,
    notes: str | None | object = UNCHANGED,
    project: str | object = UNCHANGED,
    tags: Iterable[str] | object = UNCHANGED,
) -> Experiment:
    """Change an experiment's name, notes, project or tags (the whole list; a tag kept keeps
    its row). Fields left `UNCHANGED` stay; None clears a name or notes."""
    experiment = get_experiment(session, experiment_id)
    if name is not UNCHANGED:
        experiment.name = name or None  # type: ignore[assignment]
    if notes is not UNCHANGED:
        experiment.notes = notes or None  # type: ignore[assignment]
    if project is not UNCHANGED:
        experiment.project = project  # type: ignore[assignment]
    if tags is not UNCHANGED:
        wanted = list(dict.fromkeys(tags))  # type: ignore[call-overload]
        kept = {t.tag: t for t in experiment.tags if t.tag in wanted}
        experiment.tags = [kept.get(t) or ExperimentTag(tag=t) for t in wanted]
    session.flush()
    return experiment


def _refuse_active(session: Session, experiment_id: int, action: str) -> Experiment:
    experiment = get_experiment(session, experiment_id)
    if experiment.status in ACTIVE:
        raise ExperimentActive(experiment_id, experiment.status.value, action)
    return experiment


def archive(session: Session, experiment_id: int) -> Experiment:
    """Hide a finished experiment from listings (`archived_at` = now; again: unchanged).
    ExperimentActive for a queued or running one, ExperimentNotFound for an unknown id."""
    session.execute(
        update(Experiment)
        .where(
            Experiment.id == experiment_id,
            Experiment.status.not_in(ACTIVE),
            Experiment.archived_at.is_(None),
        )
        .values(archived_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    session.expire_all()
    experiment = get_experiment(session, experiment_id)
    if experiment.archived_at is None:
        _refuse_active(session, experiment_id, "archive")
    return experiment


def restore(session: Session, experiment_id: int) -> Experiment:
    """Show an archived experiment in listings again (a live one: unchanged)."""
    experiment = get_experiment(session, experiment_id)
    experiment.archived_at = None
    session.flush()
    return experiment


def purge(session: Session, experiment_id: int) -> None:
    """Delete an experiment's row with its metrics, tags and logs (its artifacts are the
    caller's: `api.services.manage`). ExperimentActive for a queued or running job."""
    _refuse_active(session, experiment_id, "purge")
    for table in (EpochMetric, TaskResult, ExperimentLog, ExperimentTag):
        session.execute(delete(table).where(table.experiment_id == experiment_id))
    gone = session.execute(
        delete(Experiment)
        .where(Experiment.id == experiment_id, Experiment.status.not_in(ACTIVE))
        .execution_options(synchronize_session=False)
    ).rowcount
    session.expunge_all()
    if not gone:  # claimed in between: the caller's unit of work rolls the rest back
        _refuse_active(session, experiment_id, "purge")


@dataclass
class SweepCancel:
    """What cancelling a sweep did: queued points cancelled, running ones asked to stop,
    and how many had ended already."""

    sweep_id: int
    cancelled: list[int] = field(default_factory=list)
    stopping: list[int] = field(default_factory=list)
    finished: int = 0


def sweep_owner(session: Session, sweep_id: int) -> tuple[int, str]:
    """(owner id, owner name) of a sweep; SweepNotFound for an unknown one."""
    sweep = get_sweep(session, sweep_id)
    owner = session.get(User, sweep.owner_id)
    return sweep.owner_id, owner.name if owner is not None else f"user {sweep.owner_id}"


def cancel_sweep(session: Session, sweep_id: int) -> SweepCancel:
    """Cancel every queued or running point of a sweep, each exactly as a single cancel
    (`store.experiments.request_cancel`). SweepNotFound for an unknown sweep."""
    get_sweep(session, sweep_id)
    result = SweepCancel(sweep_id)
    for point in sweep_experiments(session, sweep_id):
        if point.status not in ACTIVE:
            result.finished += 1
            continue
        try:
            after = request_cancel(session, point.id)
        except ExperimentFinished:  # it ended in between
            result.finished += 1
            continue
        (result.stopping if after.status in ACTIVE else result.cancelled).append(point.id)
    return result
