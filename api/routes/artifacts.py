"""`/v1/experiments/{id}/artifacts`: the final model, per-task checkpoints (as zips) and
TensorBoard files of an experiment, listed and downloaded.

Every requested path goes through `store.artifacts.resolve_artifact` (in
`api.services.artifacts`): nothing outside the experiment's artifacts folder can be read
(`..`, absolute paths, symlinks out → 422).
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response, StreamingResponse

from api.deps import CurrentUser, ExperimentId, SessionDep, SettingsDep
from api.openapi import binary
from api.schemas import ArtifactList, ArtifactOut, ErrorMessage, ProblemList
from api.services import artifacts as artifact_service
from store import artifacts, experiments

router = APIRouter(
    prefix="/v1/experiments",
    tags=["artifacts"],
    responses={401: {"model": ErrorMessage, "description": "Missing, unknown or revoked token"}},
)


@router.get(
    "/{experiment_id}/artifacts",
    operation_id="list_artifacts",
    responses={404: {"model": ErrorMessage, "description": "No experiment with this id"}},
)
def list_artifacts(
    experiment_id: ExperimentId, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> ArtifactList:
    """The final model (`model.keras`), the checkpoint after each task (`task-<k>.zip`) and
    TensorBoard event files (`tensorboard.zip`), with sizes in bytes."""
    experiments.get_experiment(session, experiment_id)
    items = artifacts.list_artifacts(settings.resolved_artifacts_dir(), experiment_id)
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
    },
)
def download_artifact(
    experiment_id: ExperimentId, path: str, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> FileResponse | StreamingResponse:
    """Download one artifact: a file as is, a folder (`task-1.zip`) as a zip made on the fly."""
    return artifact_service.download(session, settings, experiment_id, path)
