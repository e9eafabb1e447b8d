"""An experiment's artifacts, listed and downloaded from the configured artifact store.

On the local store (the default, or EWC_ARTIFACTS_URL naming a folder) nothing changed:
every requested path goes through `store.artifacts.resolve_artifact` (nothing outside the
experiment's folder can be read: `..`, absolute paths, symlinks out → 422), a file is a
`FileResponse`, a folder a zip made on the fly.

On a remote store (`s3://...`, so the API can serve what a worker on another host wrote)
the listing comes from the store's objects under `experiments/<id>/` (published checkpoint
folders only, never a half-written one), in the same shape; a file is streamed from
`store.open`, a folder as a zip streamed while it is built (stdlib `zipfile` writing to a
sink drained after each chunk: memory stays at a chunk, no temporary file). Requested paths
pass the same checks, and names starting with `.` (the store's manifests and versions) are
not artifacts. `NotInStore` is a 404; a store that cannot be reached is a 503 with
`Retry-After`, its message from `common.storage` (never a credential). No presigned URL
is ever handed out: the bytes go through the API, behind its authentication.
"""

from __future__ import annotations

import logging
import os
import zipfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack
from functools import lru_cache
from typing import BinaryIO

from fastapi import HTTPException
from fastapi.responses import FileResponse, StreamingResponse
from sqlalchemy.orm import Session

from common.settings import Settings
from common.storage import ArtifactStore, NotInStore, StorageError, StorageUnavailable, open_store
from store import artifacts, experiments

log = logging.getLogger("ewc.api")

#: A request waits a little for a store, not as long as a worker does.
REQUEST_S3 = {"connect_timeout_s": 5.0, "read_timeout_s": 30.0, "max_attempts": 2}
#: Seconds a client is asked to wait after a 503 from an unreachable store.
RETRY_AFTER_S = 5
CHUNK = 256 * 1024
#: Variables that change which endpoint or identity a store's client talks to.
_CLIENT_VARIABLES = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID",
                     "AWS_PROFILE", "AWS_DEFAULT_REGION", "AWS_REGION")


@lru_cache(maxsize=8)
def _open(url: str, _client: tuple) -> ArtifactStore:
    return open_store(url, **REQUEST_S3) if url.startswith("s3://") else open_store(url)


def artifact_store(settings: Settings) -> ArtifactStore:
    """The settings' artifact store, built once per URL and AWS identity (its S3 client,
    thread-safe, is reused by every request)."""
    return _open(settings.resolved_artifacts_url(),
                 tuple(os.environ.get(n) for n in _CLIENT_VARIABLES))


def _key(experiment_id: int, path: str = "") -> str:
    return "/".join(p for p in ("experiments", str(int(experiment_id)), path) if p)


def _unavailable(exc: StorageError) -> HTTPException:
    """The 503 of a store that failed: the store's own message (it holds no credential)."""
    log.warning("event=storage_error error=%r", str(exc)[:300])
    headers = {"Retry-After": str(RETRY_AFTER_S)} if isinstance(exc, StorageUnavailable) else None
    hint = "; retry shortly" if headers else ""
    return HTTPException(503, f"the artifact store cannot serve this now{hint} ({exc})",
                         headers=headers)


def list_artifacts(session: Session, settings: Settings, experiment_id: int) -> list[artifacts.Artifact]:
    """Every artifact of the experiment (NotFound without the experiment)."""
    experiments.get_experiment(session, experiment_id)
    store = artifact_store(settings)
    if store.is_local:
        return artifacts.list_artifacts(store.root, experiment_id)  # type: ignore[attr-defined]
    base = _key(experiment_id) + "/"
    try:
        objects = store.list(_key(experiment_id))
    except StorageError as exc:
        raise _unavailable(exc) from None
    return artifacts.group_objects(
        (o.key.removeprefix(base), o.size, o.modified) for o in objects
        if not any(part.startswith(".") for part in o.key.removeprefix(base).split("/"))
    )


def download(
    session: Session, settings: Settings, experiment_id: int, path: str
) -> FileResponse | StreamingResponse:
    """The response that sends artifact `path` of the experiment (NotFound, or
    `ArtifactPathRefused` for a path that would leave its folder; 503 when a remote store
    cannot be reached)."""
    experiments.get_experiment(session, experiment_id)
    store = artifact_store(settings)
    filename = f"experiment-{experiment_id}-{path.replace('/', '-')}"
    disposition = {"Content-Disposition": f'attachment; filename="{filename}"'}
    if not store.is_local:
        artifacts.check_request_path(path)
        session.commit()  # no transaction held while the store answers and the bytes flow
        try:
            return _remote(store, experiment_id, path, disposition)
        except NotInStore:
            raise artifacts.ArtifactNotFound(experiment_id, path) from None
        except StorageError as exc:
            raise _unavailable(exc) from None
    root = store.root  # type: ignore[attr-defined]
    location, is_folder = artifacts.resolve_artifact(root, experiment_id, path)
    session.commit()  # no transaction (SQLite: no lock) held while the download streams
    if is_folder:
        spool = artifacts.zip_folder(
            location, artifacts.experiment_dir(root, experiment_id).resolve()
        )
        return StreamingResponse(
            artifacts.iter_chunks(spool), media_type="application/zip", headers=disposition
        )
    return FileResponse(location, media_type="application/octet-stream", filename=filename)


# A remote store ------------------------------------------------------------------------------


def _remote(store: ArtifactStore, experiment_id: int, path: str, headers: dict) -> StreamingResponse:
    if any(part.startswith(".") or not part for part in path.split("/")):
        raise NotInStore("get", path, "not an artifact")  # manifests, versions; `a//b`
    key = _key(experiment_id, path)
    try:
        info = store.info(key)
    except NotInStore:
        info = None
    if info is not None:
        stack = ExitStack()
        body = stack.enter_context(store.open(key))  # opened now: a failure is a 404/503
        return StreamingResponse(
            _chunks(body, stack, key), media_type="application/octet-stream",
            headers={**headers, "Content-Length": str(info.size)},
        )  # fmt: skip
    folder = key.removesuffix(artifacts.ZIP_SUFFIX) if path.endswith(artifacts.ZIP_SUFFIX) else None
    members = _folder(store, folder) if folder else None
    if not members:
        if not folder and _folder(store, key):  # a folder asked without ".zip": point at it
            raise artifacts.ArtifactNotFound(experiment_id, path + artifacts.ZIP_SUFFIX)
        raise NotInStore("get", path, "no such artifact")
    return StreamingResponse(_zip(members, key), media_type="application/zip", headers=headers)


def _folder(store: ArtifactStore, folder: str) -> list[tuple[str, Callable[[], AbstractContextManager[BinaryIO]]]]:
    """(relative path, opener) of each file of `folder`: the files its manifest names when
    it is a published folder (a checkpoint), else the objects under it (TensorBoard)."""
    published = store.published(folder)
    if published is not None:
        return [(rel, lambda r=rel: store.open_published(folder, r)) for rel in sorted(published)]
    return [(o.key.removeprefix(folder + "/"), lambda k=o.key: store.open(k))
            for o in store.list(folder)
            if not any(p.startswith(".") for p in o.key.removeprefix(folder + "/").split("/"))]


def _chunks(body: BinaryIO, stack: ExitStack, key: str) -> Iterator[bytes]:
    with stack:
        try:
            while chunk := body.read(CHUNK):
                yield chunk
        except StorageError as exc:  # headers are sent: all we can do is cut it short
            log.warning("event=artifact_stream_failed key=%s error=%r", key, str(exc)[:300])
            raise


class _Sink:
    """A write-only stream `zipfile` writes to (not seekable: it writes data descriptors);
    `drain` hands over what was written since the last call."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def drain(self) -> bytes:
        data, self._parts = b"".join(self._parts), []
        return data


def _zip(members: list, key: str) -> Iterator[bytes]:
    sink = _Sink()
    try:
        with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
            for rel, opener in members:
                with opener() as src, zf.open(rel, "w", force_zip64=True) as out:
                    while chunk := src.read(CHUNK):
                        out.write(chunk)
                        if data := sink.drain():
                            yield data
                if data := sink.drain():  # the member's last bytes and data descriptor
                    yield data
        yield sink.drain()  # the central directory
    except StorageError as exc:  # headers are sent: all we can do is cut it short
        log.warning("event=artifact_zip_failed key=%s error=%r", key, str(exc)[:300])
        raise


def listing_for_page(session: Session, settings: Settings, experiment_id: int) -> dict:
    """The experiment page's artifacts: `artifacts` (a list) and `artifacts_error` (why a
    remote store could not list them, else None): the page shows the rest regardless."""
    try:
        return {"artifacts": list_artifacts(session, settings, experiment_id),
                "artifacts_error": None}
    except HTTPException as exc:
        return {"artifacts": [], "artifacts_error": str(exc.detail)}
