"""Managing runs after the fact: re-run, edit, archive, restore, purge, cancel a sweep.

- `POST /v1/experiments/{id}/rerun` {"overrides": {"ewc.lambda": 10}}: a new run of the
  stored spec (overrides as dotted paths, the whole checked as a submission), `rerun_of`
  set; the name gains " (re-run)" unless the overrides name it;
- `PATCH /v1/experiments/{id}` {"name", "tags", "notes", "project"}: owner or admin;
- `DELETE /v1/experiments/{id}` archives (hidden from listings unless `archived=true`),
  `POST .../restore` brings it back, `POST .../purge` (admin) deletes it and its artifacts;
  a queued or running job is refused (409: cancel it first);
- `POST /v1/sweeps/{id}/cancel`: every queued or running point, as a single cancel.
"""

from __future__ import annotations

from fastapi import APIRouter, status

from api import submission
from api.deps import CeleryDep, CurrentUser, ExperimentId, SessionDep, SettingsDep, SweepId
from api.schemas import ErrorMessage, ExperimentOut, ProblemList, experiment_out
from api.services import manage
from common.schemas_manage import ExperimentEdit, Purged, RerunIn, SweepCancelled

router = APIRouter(
    prefix="/v1",
    responses={401: {"model": ErrorMessage, "description": "Missing, unknown or revoked token"}},
)

_NOT_FOUND = {404: {"model": ErrorMessage, "description": "No experiment with this id"}}
_FORBIDDEN = {403: {"model": ErrorMessage, "description": "Neither the owner nor an admin"}}
_ACTIVE = {409: {"model": ErrorMessage, "description": "Queued or running: cancel it first"}}


@router.post(
    "/experiments/{experiment_id}/rerun",
    operation_id="rerun_experiment",
    tags=["experiments"],
    status_code=status.HTTP_201_CREATED,
    responses={
        **_NOT_FOUND,
        422: {"model": ProblemList, "description": "An override makes the spec invalid"},
        429: {"model": ErrorMessage, "description": "Too many queued/running jobs for this user"},
    },
)
def rerun_experiment(
    experiment_id: ExperimentId,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    celery: CeleryDep,
    body: RerunIn | None = None,
) -> ExperimentOut:
    """Queue the experiment again: its stored spec with `overrides` (dotted paths) applied,
    the same tags and project, `rerun_of` = this id. The new run is yours."""
    experiment = manage.rerun(session, settings, user, experiment_id, body)
    submission.wake(session, celery, [experiment])
    return experiment_out(experiment)


@router.patch(
    "/experiments/{experiment_id}",
    operation_id="edit_experiment",
    tags=["experiments"],
    responses={
        **_NOT_FOUND,
        **_FORBIDDEN,
        422: {"model": ProblemList, "description": "A field too long, or one that is not editable"},
    },
)
def edit_experiment(
    experiment_id: ExperimentId, body: ExperimentEdit, user: CurrentUser, session: SessionDep
) -> ExperimentOut:
    """Change the name, tags (the whole list), notes or project; fields left out stay."""
    return experiment_out(manage.edit(session, user, experiment_id, body))


@router.delete(
    "/experiments/{experiment_id}",
    operation_id="archive_experiment",
    tags=["experiments"],
    responses={**_NOT_FOUND, **_FORBIDDEN, **_ACTIVE},
)
def archive_experiment(
    experiment_id: ExperimentId, user: CurrentUser, session: SessionDep
) -> ExperimentOut:
    """Archive a finished experiment: hidden from listings (unless `archived=true`), still
    readable by id, nothing deleted. `POST .../restore` undoes it."""
    return experiment_out(manage.archive(session, user, experiment_id))


@router.post(
    "/experiments/{experiment_id}/restore",
    operation_id="restore_experiment",
    tags=["experiments"],
    responses={**_NOT_FOUND, **_FORBIDDEN},
)
def restore_experiment(
    experiment_id: ExperimentId, user: CurrentUser, session: SessionDep
) -> ExperimentOut:
    """Bring an archived experiment back into listings."""
    return experiment_out(manage.restore(session, user, experiment_id))


@router.post(
    "/experiments/{experiment_id}/purge",
    operation_id="purge_experiment",
    tags=["experiments"],
    responses={
        **_NOT_FOUND,
        403: {"model": ErrorMessage, "description": "Not an admin"},
        **_ACTIVE,
        503: {"model": ErrorMessage, "description": "The artifact store cannot delete now"},
    },
)
def purge_experiment(
    experiment_id: ExperimentId, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> Purged:
    """Delete a finished experiment for good (admin only): its row, metrics, tags and logs,
    and its files in the artifact store. Runs that re-ran it keep their `rerun_of`."""
    removed = manage.purge(session, settings, user, experiment_id)
    return Purged(id=experiment_id, artifacts_deleted=removed)


@router.post(
    "/sweeps/{sweep_id}/cancel",
    operation_id="cancel_sweep",
    tags=["sweeps"],
    responses={
        404: {"model": ErrorMessage, "description": "No sweep with this id"},
        403: {"model": ErrorMessage, "description": "Neither the owner nor an admin"},
    },
)
def cancel_sweep(sweep_id: SweepId, user: CurrentUser, session: SessionDep) -> SweepCancelled:
    """Cancel every queued point at once and ask every running one to stop (each as
    `POST /v1/experiments/{id}/cancel`); points that ended already stay as they are."""
    result = manage.cancel_sweep(session, user, sweep_id)
    return SweepCancelled(sweep_id=sweep_id, cancelled=result.cancelled,
                          stopping=result.stopping, finished=result.finished)  # fmt: skip
