"""Queueing experiments from the dashboard's form and from sweeps, with the same checks as
`POST /v1/experiments`: the spec, the server's limits, the per-user cap, then a wake-up per
job once the rows are committed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from celery import Celery
from pydantic import ValidationError
from sqlalchemy.orm import Session

from api import dataset_specs, parsing
from api.errors import SpecProblems
from api.limits import limit_problems
from common.broker import send_wakeup
from common.settings import Settings
from continual_core.spec import ExperimentSpec, validation_problems
from continual_core.user_datasets import is_user, user_name
from store import datasets as store_datasets
from store import experiments as store_experiments
from store import sweeps as store_sweeps
from store.errors import LimitReached
from store.models import Experiment, Sweep, User

log = logging.getLogger("ewc.api")


class SweepTooLarge(LimitReached):
    def __init__(self, user: str, points: int, active: int, cap: int):
        super().__init__(
            f"this sweep has {points} grid points, but user {user!r} already has {active} "
            f"queued or running experiments and the cap is {cap} per user; shrink the grid "
            "or wait for some jobs to finish"
        )


def create_experiment(
    session: Session,
    settings: Settings,
    user: User,
    spec: ExperimentSpec,
    *,
    project: str | None = None,
    rerun_of: int | None = None,
) -> Experiment:
    """A queued experiment for a valid spec (not committed, no wake-up yet), in `project`
    (default: the user's name); `rerun_of`: the run it repeats (`ewc rerun`).

    Raises `SpecProblems` (422) above the server's limits, `ActiveJobCapReached` (429).
    """
    spec = _resolve(session, spec)  # user:<name> → its upload (422 when none)
    problems = limit_problems(spec, settings)
    if problems:
        raise SpecProblems(problems)
    experiment = store_experiments.create_experiment(
        session,
        user,
        spec.to_json_dict(),
        num_tasks=spec.num_tasks,
        total_epochs=spec.epochs,
        max_active=settings.max_active_jobs_per_user,
        project=project,
        rerun_of=rerun_of,
    )
    log.info(
        "event=experiment_submitted experiment_id=%s owner=%s queue=%s",
        experiment.id,
        user.name,
        experiment.queue,
    )
    return experiment


def _resolve(session: Session, spec: ExperimentSpec) -> ExperimentSpec:
    """`dataset_specs.resolve`, with an upload's row share-locked until this transaction
    commits the experiment: a concurrent delete waits for it (then 409), or it waits for
    the delete (then 422, no such dataset). See `store.datasets`."""
    if is_user(spec.dataset):
        store_datasets.lock_dataset(session, user_name(str(spec.dataset)))
    return dataset_specs.resolve(session, spec)


def wake(session: Session, celery: Celery, created: Sequence[Experiment]) -> int:
    """Commit the new experiments, then send one wake-up each; returns how many the broker took.

    The rows are committed already marked as woken, so the worker that the wake-up starts
    never finds them locked by a second "wake-up sent" update. A wake-up the broker refuses
    is not an error: the mark is taken back and a worker re-sends it later (worker/wakeups.py).
    """
    store_experiments.mark_wakeup_sent(session, [e.id for e in created])
    session.commit()  # the worker woken next must find the rows
    lost = [e.id for e in created if not send_wakeup(celery, e.queue, e.id)]
    if lost:
        store_experiments.mark_wakeup_sent(session, lost, sent=False)
        session.commit()
    return len(created) - len(lost)


def _describe(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in params.items())


def sweep_points(
    base: dict[str, Any], grid: Any, settings: Settings, session: Session | None = None
) -> list[tuple[dict[str, Any], ExperimentSpec]]:
    """(params, validated spec) per grid point. Nothing is written.

    Raises `GridError` (422) for a malformed grid, and `SpecProblems` (422) naming, for
    each invalid point, the grid path (`grid.ewc.lambda`) or base field (`base.epochs`)
    with the offending value and the point.
    """
    for where, value in (("base", base), ("grid", grid)):
        problem = parsing.json_text_problem(value)
        if problem:
            raise SpecProblems([(where, problem)])
    points = store_sweeps.expand_grid(base, grid)
    problems: dict[tuple[str, str], None] = {}
    valid: list[tuple[dict[str, Any], ExperimentSpec]] = []
    for params, raw in points:
        try:
            spec = ExperimentSpec.model_validate(raw)
            spec = _resolve(session, spec) if session is not None else spec
        except SpecProblems as exc:  # user:<name>: no such upload, or its shape refuses
            for field, msg in exc.problems:
                problems[(f"grid.{field}" if field in params else f"base.{field}", msg)] = None
            continue
        except ValidationError as exc:
            for field, msg in validation_problems(exc):
                key = next((k for k in params if field == k or field.startswith(k + ".")), None)
                if key is not None:
                    problems[(f"grid.{key}", f"{params[key]!r}: {msg}")] = None
                else:
                    problems[(f"base.{field}", f"{msg} (at grid point {_describe(params)})")] = None
            continue
        for field, msg in limit_problems(spec, settings):
            problems[(f"grid.{field}" if field in params else f"base.{field}", msg)] = None
        valid.append((params, spec))
    if problems:
        raise SpecProblems(list(problems))
    return valid


def create_sweep(
    session: Session,
    settings: Settings,
    user: User,
    *,
    base: dict[str, Any],
    grid: Any,
    name: str | None = None,
) -> tuple[Sweep, list[Experiment]]:
    """A sweep and one queued experiment per grid point, all or nothing (not committed).

    Every point is validated first; the per-user cap must leave room for all of them.
    """
    if name is not None and parsing.text_problem(name):
        raise SpecProblems([("name", str(parsing.text_problem(name)))])
    points = sweep_points(base, grid, settings, session)
    active = store_experiments.count_active_jobs(session, user)
    cap = settings.max_active_jobs_per_user
    if active + len(points) > cap:
        raise SweepTooLarge(user.name, len(points), active, cap)
    sweep = store_sweeps.create_sweep(
        session, owner_id=user.id, base_spec=base, grid=store_sweeps.check_grid(grid), name=name
    )
    label = name or f"sweep {sweep.id}"
    created = []
    for params, spec in points:
        experiment = store_experiments.create_experiment(
            session,
            user,
            spec.to_json_dict(),
            num_tasks=spec.num_tasks,
            total_epochs=spec.epochs,
            name=f"{label} · {_describe(params)}"[:200],
        )
        experiment.sweep_id = sweep.id
        created.append(experiment)
    session.flush()
    log.info(
        "event=sweep_created sweep_id=%s owner=%s experiments=%s", sweep.id, user.name, len(created)
    )
    return sweep, created
