"""Uploaded datasets: receive a file (streamed to a temporary file, never whole into
memory), check it, store it, list and delete it (`api.dataset_specs` resolves
`user:<name>` in a spec at submission).

The route's body cap is set by `api.body_limit` (`dataset_routes`): the request may be a
little larger than `EWC_MAX_DATASET_MB` (the multipart framing), the file itself not.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

from fastapi import HTTPException
from sqlalchemy.orm import Session

from api.errors import SpecProblems
from api.services.artifacts import artifact_store
from common.schemas_datasets import DatasetOut
from common.settings import Settings
from common.storage import StorageError, StorageUnavailable
from continual_core.user_datasets import (
    USER_PREFIX,
    NpzProblem,
    inspect_npz,
    name_problem,
)
from store import datasets as store_datasets
from store.models import User
from store.records import Dataset

log = logging.getLogger("ewc.api")

MIB = 1024 * 1024
#: Longest description of a dataset.
MAX_DESCRIPTION = 2000
#: Bytes of multipart framing (boundaries, headers, the name and description fields)
#: allowed on top of the file: the body cap of the upload routes.
FORM_OVERHEAD = 64 * 1024
CHUNK = 1 << 20


def max_file_bytes(settings: Settings) -> int:
    return int(settings.max_dataset_mb * MIB)


def max_body_bytes(settings: Settings) -> int:
    """The body cap of an upload: the largest file plus the form's framing."""
    return max_file_bytes(settings) + FORM_OVERHEAD


def too_large_message(settings: Settings) -> str:
    return (f"the dataset file is larger than this server's limit of {settings.max_dataset_mb:g} "
            "MiB (EWC_MAX_DATASET_MB)")  # fmt: skip


def too_large(settings: Settings) -> HTTPException:
    return HTTPException(413, too_large_message(settings))


def spool(source: BinaryIO, settings: Settings) -> tuple[Path, str, int]:
    """Copy an uploaded file to a temporary file in chunks, at most the size limit (413
    beyond); returns (path, sha256, size). The caller removes the file."""
    limit = max_file_bytes(settings)
    digest, size = hashlib.sha256(), 0
    fd, name = tempfile.mkstemp(prefix="ewc-dataset-", suffix=".npz")
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := source.read(CHUNK):
                size += len(chunk)
                if size > limit:
                    raise too_large(settings)
                digest.update(chunk)
                out.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path, digest.hexdigest(), size


def check_fields(name: Any, description: Any) -> tuple[str, str | None]:
    """The form's name and description, or a 422 naming the field."""
    if not isinstance(name, str) or not name:
        raise SpecProblems([("name", ("missing: give the dataset a name (the form field "
                                     "`name`; a spec then uses it as user:<name>)"))])  # fmt: skip
    problem = name_problem(name)
    if problem:
        raise SpecProblems([("name", problem)])
    if description is not None and not isinstance(description, str):
        raise SpecProblems([("description", "must be text, not a file")])
    description = (description or "").strip() or None
    if description is not None:
        if len(description) > MAX_DESCRIPTION:
            raise SpecProblems([("description", (f"is {len(description)} characters long; at "
                                                f"most {MAX_DESCRIPTION}"))])  # fmt: skip
        if "\x00" in description:
            raise SpecProblems([("description", "must not contain NUL bytes")])
    return name, description


def create(session: Session, settings: Settings, user: User, *, path: Path, checksum: str,
           size: int, name: str, description: str | None) -> Dataset:
    """Check the spooled file, store it, add its row (flushed; the request commits)."""
    if store_datasets.find_dataset(session, name) is not None:
        raise store_datasets.DatasetExists(name)
    try:
        summary = inspect_npz(path, max_uncompressed=4 * max_file_bytes(settings))
    except NpzProblem as exc:
        raise SpecProblems([("file", str(exc))]) from None
    key = store_datasets.storage_key(checksum)
    store = artifact_store(settings)
    try:
        if not store.exists(key):
            store.put_file(key, path)
    except StorageError as exc:
        raise unavailable(exc) from None
    row = store_datasets.create_dataset(
        session, user, name=name, checksum=checksum, size_bytes=size, storage_key=key,
        input_shape=list(summary.example_shape), num_classes=summary.num_classes,
        train_examples=summary.train_examples, test_examples=summary.test_examples,
        class_names=summary.class_names, description=description,
    )  # fmt: skip
    log.info("event=dataset_uploaded name=%s owner=%s bytes=%s sha256=%s", name, user.name,
             size, checksum)  # fmt: skip
    return row


def unavailable(exc: StorageError) -> HTTPException:
    """503 for a store that failed (its message holds no credential)."""
    log.warning("event=storage_error error=%r", str(exc)[:300])
    headers = {"Retry-After": "5"} if isinstance(exc, StorageUnavailable) else None
    return HTTPException(503, f"the artifact store cannot take this now ({exc})", headers=headers)


def out(row: Dataset, owner: str) -> DatasetOut:
    return DatasetOut(
        name=row.name, use_as=USER_PREFIX + row.name, owner=owner, checksum=row.checksum,
        size_bytes=row.size_bytes, input_shape=list(row.input_shape),
        num_classes=row.num_classes, class_names=row.class_names,
        train_examples=row.train_examples, test_examples=row.test_examples,
        description=row.description, created_at=row.created_at,
    )  # fmt: skip


def remove(session: Session, settings: Settings, user: User, name: str) -> None:
    """Delete a dataset: its owner or an admin (403), not while active jobs use it (409).
    The row is locked first, so a submission naming it either committed before (409) or
    waits and then finds no dataset (422)."""
    row = store_datasets.get_dataset(session, name, for_delete=True)
    if row.owner_id != user.id and not user.is_admin:
        raise HTTPException(403, f"dataset {name!r} belongs to another user; only its owner "
                                 "or an admin may delete it")  # fmt: skip
    checksum = row.checksum
    store_datasets.delete_dataset(session, row, USER_PREFIX + name)
    if not store_datasets.still_stored(session, checksum):
        try:
            artifact_store(settings).delete(store_datasets.storage_key(checksum))
        except StorageError as exc:  # the row is gone; the orphan file is only disk space
            log.warning("event=dataset_file_not_deleted name=%s error=%r", name, str(exc)[:300])
    log.info("event=dataset_deleted name=%s by=%s", name, user.name)


#: The paths that take a dataset file (the API's and the dashboard's upload).
UPLOAD_PATHS = ("/v1/datasets", "/ui/datasets")


def dataset_upload_limits(settings: Settings) -> dict[str, tuple[int, str]]:
    """`api.body_limit.BodySizeLimit`'s routes: each upload path's body cap and 413."""
    return {path: (max_body_bytes(settings), too_large_message(settings)) for path in UPLOAD_PATHS}
