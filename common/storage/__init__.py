"""Artifact storage behind one interface (`ArtifactStore`): checkpoints, final models,
TensorBoard event files and uploaded datasets, in a local folder or an S3 bucket.

`open_store(url)` picks the backend from `EWC_ARTIFACTS_URL` (see
common.settings.Settings.artifact_store): unset or a path is the local folder (today's
layout, `common.storage.local`); `s3://bucket/prefix` is a bucket (`common.storage.s3`,
boto3, credentials and endpoint from the standard AWS_* variables). A worker keeps
downloads in a `ChecksumCache`. Every backend failure is a `StorageError` (the waitable
kind: `StorageUnavailable`) whose message holds no credential.
"""

from __future__ import annotations

from pathlib import Path

from common.storage.base import (
    CHECKPOINT_PREFIX,
    GARBAGE_GRACE_S,
    ArtifactStore,
    Checkpoint,
    NotInStore,
    ObjectInfo,
    StorageError,
    StorageUnavailable,
    scrub,
)
from common.storage.cache import ChecksumCache, sha256_of
from common.storage.local import LocalStore
from common.storage.s3 import S3Store, parse_s3_url

__all__ = [
    "CHECKPOINT_PREFIX", "GARBAGE_GRACE_S", "ArtifactStore", "Checkpoint", "ChecksumCache",
    "LocalStore", "NotInStore", "ObjectInfo", "S3Store", "StorageError", "StorageUnavailable",
    "open_store", "parse_s3_url", "scrub", "sha256_of",
]


def open_store(url: str | Path, **s3_options) -> ArtifactStore:
    """The store at `url`: `s3://bucket/prefix`, `file:///path` or a plain folder path.
    `s3_options` (timeouts, attempts) go to `S3Store`."""
    text = str(url)
    if text.startswith("s3://"):
        return S3Store.from_url(text, **s3_options)
    if text.startswith("file://"):
        return LocalStore(Path(text.removeprefix("file://")))
    if "://" in text:
        raise ValueError("an artifacts URL is s3://bucket/prefix or a local folder "
                         f"(got a {text.split('://', 1)[0]}:// URL)")
    return LocalStore(Path(text))
