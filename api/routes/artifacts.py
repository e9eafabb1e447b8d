"""`/v1/experiments/{id}/artifacts`: the final model, per-task checkpoints (as zips) and
TensorBoard files of an experiment, listed and downloaded.

They come from the configured artifact store (`api.services.artifacts`): the local folder
as always, or a bucket (EWC_ARTIFACTS_URL=s3://...) that a worker on any host wrote to.
Every requested path is checked there: nothing outside the experiment's artifacts can be
read (`..`, absolute paths, symlinks out → 422); a store that cannot be reached is a 503.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response, StreamingResponse

from api.deps import CurrentUser, ExperimentId, SessionDep, SettingsDep
from api.openapi import binary
from api.schemas import ArtifactList, ArtifactOut, ErrorMessage, ProblemList
from api.services import artifacts as artifact_service

router = APIRouter(
    prefix="/v1/experiments",
    tags=["artifacts"],
    responses={401: {"model": ErrorMessage, "description": "Missing, unknown or revoked token"}},
)


@router.get(
    "/{experiment_id}/artifacts",
    operation_id="list_artifacts",
    responses={
        404: {"model": ErrorMessage, "description": "No experiment with this id"},
        503: {"model": ErrorMessage, "description": "The artifact store cannot be reached"},
    },
)
def list_artifacts(
    experiment_id: ExperimentId, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> ArtifactList:
    """The final model (`model.keras`), the checkpoint after each task (`task-<k>.zip`) and
    TensorBoard event files (`tensorboard.zip`), with sizes in bytes."""
    items = artifact_service.list_artifacts(session, settings, experiment_id)
    return ArtifactList(
        experiment_id=experiment_id,
        items=[
            ArtifactOut(
                path=a.path, kind=a.kind, size=a.size, files=a.files, modified=a.modified,
                url=f"/v1/experiments/{experiment_id}/artifacts/{a.path}",
            )
            for a in items
        ],
    )


@router.get(
    "/{experiment_id}/artifacts/{path:path}",
    operation_id="download_artifact",
    response_class=Response,
    response_model=None,
    responses={
        200: binary("application/octet-stream", "application/zip",
                    description="A file as is, or a folder as a zip"),
        404: {"model": ErrorMessage, "description": "No such experiment or artifact"},
        422: {"model": ProblemList, "description": "A path that would leave the folder"},
        503: {"model": ErrorMessage, "description": "The artifact store cannot be reached"},
    },
)
def download_artifact(
    experiment_id: ExperimentId, path: str, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> FileResponse | StreamingResponse:
    """Download one artifact: a file as is, a folder (`task-1.zip`) as a zip made on the fly."""
    return artifact_service.download(session, settings, experiment_id, path)
