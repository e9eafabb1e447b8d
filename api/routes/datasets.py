"""Uploaded datasets (`/v1/datasets`): upload, list, get, delete.

An upload is `multipart/form-data` with a `file` part (the `.npz`) and a `name` field
(optionally `description`): `curl -F file=@mine.npz -F name=mine`. The file is streamed to
a temporary file (never read whole into memory), capped at `EWC_MAX_DATASET_MB` (413),
checked (422 naming what is wrong), stored in the artifact store by its sha256 and listed.
Every user may use every dataset (`"dataset": "user:<name>"`); only its owner or an admin
may delete one, and not while a queued or running experiment names it (409).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request, status
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException

from api.deps import CurrentUser, SessionDep, SettingsDep
from api.errors import SpecProblems
from api.schemas import ErrorMessage, ProblemList
from api.services import datasets as service
from common.schemas_datasets import DatasetList, DatasetOut
from continual_core.user_datasets import NAME_PATTERN
from store import datasets as store_datasets
from store.users import user_name

router = APIRouter(
    prefix="/v1/datasets",
    tags=["datasets"],
    responses={401: {"model": ErrorMessage, "description": "Missing, unknown or revoked token"}},
)

DatasetName = Annotated[str, Path(max_length=64, pattern=NAME_PATTERN, description="Dataset name")]
_NOT_FOUND = {404: {"model": ErrorMessage, "description": "No dataset with this name"}}
_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {"multipart/form-data": {"schema": {
            "type": "object", "required": ["file", "name"],
            "properties": {
                "file": {"type": "string", "format": "binary", "description": "The .npz: "
                         "x_train, y_train, x_test, y_test, optionally class_names"},
                "name": {"type": "string", "pattern": NAME_PATTERN,
                         "description": "Its name; a spec uses it as user:<name>"},
                "description": {"type": "string", "maxLength": service.MAX_DESCRIPTION},
            },
        }}},
    }
}  # fmt: skip
MULTIPART = "multipart/form-data"


@router.post(
    "",
    operation_id="upload_dataset",
    status_code=status.HTTP_201_CREATED,
    openapi_extra=_UPLOAD_BODY,
    responses={
        409: {"model": ErrorMessage, "description": "The name is taken"},
        413: {"model": ErrorMessage, "description": "File larger than EWC_MAX_DATASET_MB"},
        415: {"model": ErrorMessage, "description": "Not a multipart/form-data upload"},
        422: {"model": ProblemList, "description": "Bad name, or what is wrong with the file"},
        503: {"model": ErrorMessage, "description": "The artifact store cannot be reached"},
    },
)
async def upload_dataset(
    request: Request, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> DatasetOut:
    """Upload a `.npz` dataset (`file`, `name`, optional `description`, as multipart form
    fields). It is checked (shapes, dtypes, labels, NaN, size) and then usable by everyone as
    `"dataset": "user:<name>"`."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != MULTIPART:
        raise HTTPException(415, f"send the dataset as {MULTIPART}: a `file` part and a `name` "
                                 "field (curl -F file=@data.npz -F name=mine)")  # fmt: skip
    try:
        form = await request.form(max_files=1, max_fields=10)
    except MultiPartException as exc:
        raise HTTPException(400, f"the upload is not a readable multipart form ({exc.message})"
                            ) from None  # fmt: skip
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise SpecProblems([("file", "missing: attach the .npz as the multipart part `file`")])
        name, description = service.check_fields(form.get("name"), form.get("description"))
        path, checksum, size = await run_in_threadpool(service.spool, upload.file, settings)
    finally:
        await form.close()
    try:
        row = await run_in_threadpool(
            service.create, session, settings, user, path=path, checksum=checksum, size=size,
            name=name, description=description,
        )  # fmt: skip
    finally:
        path.unlink(missing_ok=True)
    return service.out(row, user.name)


@router.get("", operation_id="list_datasets")
def list_datasets(user: CurrentUser, session: SessionDep) -> DatasetList:
    """Every uploaded dataset, by name: shape, classes, size, owner, checksum."""
    return DatasetList(items=[service.out(row, owner) for row, owner in
                              store_datasets.list_datasets(session)])  # fmt: skip


@router.get("/{name}", operation_id="get_dataset", responses=_NOT_FOUND)
def get_dataset(name: DatasetName, user: CurrentUser, session: SessionDep) -> DatasetOut:
    """One uploaded dataset."""
    row = store_datasets.get_dataset(session, name)
    return service.out(row, user_name(session, row.owner_id))


@router.delete(
    "/{name}",
    operation_id="delete_dataset",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={
        **_NOT_FOUND,
        403: {"model": ErrorMessage, "description": "Neither the owner nor an admin"},
        409: {"model": ErrorMessage, "description": "Queued or running experiments use it"},
    },
)
def delete_dataset(
    name: DatasetName, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> None:
    """Delete a dataset (its owner or an admin), unless queued or running jobs use it."""
    service.remove(session, settings, user, name)
