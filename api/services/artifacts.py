"""Downloading an experiment's artifact: a file as is, a folder as a zip made on the fly.

Every requested path goes through `store.artifacts.resolve_artifact`: nothing outside the
experiment's artifacts folder can be read (`..`, absolute paths, symlinks out → 422).
"""

from __future__ import annotations

from fastapi.responses import FileResponse, StreamingResponse
from sqlalchemy.orm import Session

from common.settings import Settings
from store import artifacts, experiments


def download(
    session: Session, settings: Settings, experiment_id: int, path: str
) -> FileResponse | StreamingResponse:
    """The response that sends artifact `path` of the experiment (NotFound, or
    `ArtifactPathRefused` for a path that would leave its folder)."""
    experiments.get_experiment(session, experiment_id)
    root = settings.resolved_artifacts_dir()
    location, is_folder = artifacts.resolve_artifact(root, experiment_id, path)
    filename = f"experiment-{experiment_id}-{path.replace('/', '-')}"
    session.commit()  # no transaction (SQLite: no lock) held while the download streams
    if is_folder:
        spool = artifacts.zip_folder(
            location, artifacts.experiment_dir(root, experiment_id).resolve()
        )
        return StreamingResponse(
            artifacts.iter_chunks(spool),
            media_type="application/zip",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )
    return FileResponse(location, media_type="application/octet-stream", filename=filename)
