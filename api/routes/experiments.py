"""`/v1/experiments`: submit, read, list, cancel, and the metrics document.

Handlers parse, call a `store.experiments` function, and return a schema.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status

from api import submission
from api.deps import CeleryDep, CurrentUser, ExperimentId, SessionDep, SettingsDep
from api.schemas import (
    ErrorMessage,
    ExperimentOut,
    ExperimentPage,
    Metrics,
    ProblemList,
    experiment_out,
)
from api.services import runs
from continual_core.spec import ExperimentSpec
from store import experiments
from store.models import JobStatus

log = logging.getLogger("ewc.api")

router = APIRouter(
    prefix="/v1/experiments",
    tags=["experiments"],
    responses={401: {"model": ErrorMessage, "description": "Missing, unknown or revoked token"}},
)

_NOT_FOUND = {404: {"model": ErrorMessage, "description": "No experiment with this id"}}


@router.post(
    "",
    operation_id="submit_experiment",
    status_code=status.HTTP_201_CREATED,
    responses={
        400: {"model": ErrorMessage, "description": "Body not readable (e.g. not UTF-8)"},
        413: {"model": ErrorMessage, "description": "Body larger than EWC_MAX_BODY_BYTES"},
        422: {"model": ProblemList, "description": "Invalid spec: the field and what is allowed"},
        429: {"model": ErrorMessage, "description": "Too many queued/running jobs for this user"},
    },
)
def submit_experiment(
    spec: ExperimentSpec,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    celery: CeleryDep,
    project: Annotated[str | None, Query(min_length=1, max_length=100, pattern=r"^[^\x00]+$",
                                         description="Its project (default: your user name)")] = None,
) -> ExperimentOut:
    """Queue an experiment. The body is the spec (plus optional name, tags, priority, device)."""
    experiment = submission.create_experiment(session, settings, user, spec, project=project)
    submission.wake(session, celery, [experiment])
    return experiment_out(experiment)


@router.get(
    "",
    operation_id="list_experiments",
    responses={422: {"model": ProblemList, "description": "Bad filter, order_by or cursor"}},
)
def list_experiments(
    user: CurrentUser,
    session: SessionDep,
    filter: runs.FilterQuery = None,
    order_by: runs.OrderQuery = None,
    status: JobStatus | None = None,
    tag: str | None = None,
    owner: Annotated[str | None, Query(description="User name")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page")] = None,
    project: runs.ProjectQuery = None,
    archived: runs.ArchivedQuery = False,
) -> ExperimentPage:
    """Experiments matching `filter` (and `status`, `tag`, `owner`, `project`), newest first
    or by `order_by`; paginated by cursor (pass the same filter and order with it). Archived
    runs only with `archived=true`. A filter that does not parse is a 422 naming the
    offending token and its position."""
    page = runs.search(
        session, filter=filter, order_by=order_by, status=status, tag=tag, owner=owner,
        limit=limit, cursor=cursor, project=project, archived=archived,
    )  # fmt: skip
    return ExperimentPage(
        items=[experiment_out(e) for e in page.items], next_cursor=page.next_cursor
    )


@router.get("/{experiment_id}", operation_id="get_experiment", responses=_NOT_FOUND)
def get_experiment(experiment_id: ExperimentId, user: CurrentUser, session: SessionDep) -> ExperimentOut:
    """One experiment: status, spec, progress, summary, error, timings, device, owner."""
    return experiment_out(experiments.get_experiment(session, experiment_id))


@router.get("/{experiment_id}/metrics", operation_id="get_metrics", responses=_NOT_FOUND)
def get_metrics(experiment_id: ExperimentId, user: CurrentUser, session: SessionDep) -> Metrics:
    """Every epoch row and the test accuracy matrix (partial while the job runs)."""
    experiment = experiments.get_experiment(session, experiment_id)
    return Metrics.model_validate(experiments.metrics_document(session, experiment))


@router.post(
    "/{experiment_id}/cancel",
    operation_id="cancel_experiment",
    responses={
        **_NOT_FOUND,
        403: {"model": ErrorMessage, "description": "Neither the owner nor an admin"},
        409: {"model": ErrorMessage, "description": "Already finished"},
    },
)
def cancel_experiment(experiment_id: ExperimentId, user: CurrentUser, session: SessionDep) -> ExperimentOut:
    """Cancel: a queued job at once, a running one at its next check. Owner or admin only."""
    experiment = experiments.get_experiment(session, experiment_id)
    if experiment.owner_id != user.id and not user.is_admin:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"experiment {experiment_id} belongs to {experiment.owner.name}; only its owner "
            "or an admin may cancel it",
        )
    experiment = experiments.request_cancel(session, experiment_id)
    log.info(
        "event=cancel_requested experiment_id=%s by=%s status=%s",
        experiment_id,
        user.name,
        experiment.status.value,
    )
    return experiment_out(experiment)
