"""What every artifact store offers, and the one error family its callers catch.

Keys are relative POSIX paths (`experiments/7/task-2/state.npz`). A *folder* (a
checkpoint) is published as a whole: `publish_folder` makes every file of it visible at
once, or none (each backend uses its own atomic step: a rename on a local disk, a
manifest written last in a bucket). Readers only ever see published folders, so a
half-written checkpoint is never taken for the latest, and what a crash leaves behind is
garbage that `prune` removes.

Every failure of a backend is a `StorageError` whose message names the operation, the
store's URL (never a credential) and the backend's error code; `StorageUnavailable` is
the kind worth waiting for (unreachable, timed out, throttled, a 5xx), `NotInStore` the
kind that will not change. Messages are scrubbed of the AWS_* secrets and of any
`user:password@` in a URL, and the backend's own exception is not chained (a traceback
in a log shows ours only).
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import BinaryIO

#: Name of a checkpoint folder: `task-<k>` (k ≥ 1), as continual_core.checkpoint writes it.
CHECKPOINT_PREFIX = "task-"
#: Leftovers of an interrupted publish younger than this are an upload still going on.
GARBAGE_GRACE_S = 3600.0
#: Environment variables whose values never appear in a message.
SECRET_VARIABLES = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
                    "AWS_ACCESS_KEY_ID")
_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")


def scrub(text: str) -> str:
    """`text` without credentials: AWS_* secrets of this process and `user:pw@` of URLs."""
    text = _USERINFO.sub("***@", str(text))
    for name in SECRET_VARIABLES:
        value = os.environ.get(name, "")
        if len(value) >= 4:
            text = text.replace(value, "***")
    return text


class StorageError(Exception):
    """An artifact store could not do what was asked (the message holds no credential)."""

    retryable = False

    def __init__(self, operation: str, where: str, detail: str):
        self.operation, self.where, self.detail = operation, scrub(where), scrub(detail)
        super().__init__(f"artifact store: {self.operation} {self.where} failed: {self.detail}")


class StorageUnavailable(StorageError):
    """The store cannot be reached now (refused, timed out, throttled, 5xx): retry later."""

    retryable = True


class NotInStore(StorageError):
    """The key (or published folder) does not exist."""


@dataclass(frozen=True)
class ObjectInfo:
    """One stored object: its key, size in bytes, last change, and sha256 when known."""

    key: str
    size: int
    modified: datetime
    sha256: str | None = None


@dataclass(frozen=True)
class Checkpoint:
    """A published checkpoint folder: `task` k, its key, and its files by relative path."""

    task: int
    key: str
    files: dict[str, ObjectInfo]


def clean_key(key: str) -> str:
    """`key` checked to be a relative POSIX path without `.`/`..`/empty parts (one
    trailing `/` is dropped: `experiments/1/` is the folder `experiments/1`)."""
    parts = str(key).removesuffix("/").split("/")
    if not key or "\\" in key or "\x00" in key or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"not a valid artifact key: {key!r}")
    return "/".join(parts)


def join(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p.strip("/"))


def checkpoint_task(name: str) -> int | None:
    """k of a folder named `task-<k>`, else None."""
    digits = name.removeprefix(CHECKPOINT_PREFIX)
    return int(digits) if name.startswith(CHECKPOINT_PREFIX) and digits.isdigit() else None


def folder_files(src: Path) -> Iterator[tuple[str, Path]]:
    """(relative POSIX path, file) of every regular file under `src`, sorted, no symlinks."""
    for path in sorted(Path(src).rglob("*")):
        if path.is_file() and not path.is_symlink():
            yield PurePosixPath(path.relative_to(src)).as_posix(), path


class ArtifactStore(ABC):
    """Checkpoints, final models, TensorBoard files and datasets, by key."""

    #: True when keys are files on this machine (`local_path` works without a download).
    is_local = False

    # Objects ----------------------------------------------------------------------------

    @abstractmethod
    def put_file(self, key: str, src: Path) -> ObjectInfo:
        """Store the file `src` at `key`, replacing it whole (readers see old or new)."""

    @abstractmethod
    def put_bytes(self, key: str, data: bytes) -> ObjectInfo:
        """Store `data` at `key`, replacing it whole."""

    @abstractmethod
    def get_file(self, key: str, dest: Path) -> Path:
        """Copy the object at `key` to the file `dest` (written whole, then renamed)."""

    @abstractmethod
    def open(self, key: str) -> AbstractContextManager[BinaryIO]:
        """A binary stream of the object at `key`, to read once (`with store.open(k) as f`)."""

    @abstractmethod
    def info(self, key: str) -> ObjectInfo:
        """Size and time of the object at `key`; `NotInStore` when there is none."""

    @abstractmethod
    def list(self, prefix: str = "") -> list[ObjectInfo]:
        """Every object under the folder `prefix` (recursive), sorted by key. Published
        folders' files are listed under their folder's key, nothing else of them."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object at `key` (no error when there is none)."""

    @abstractmethod
    def delete_prefix(self, prefix: str) -> int:
        """Remove everything under the folder `prefix`; returns how many objects went."""

    @abstractmethod
    def url_for(self, key: str = "") -> str:
        """Where `key` lives, for messages and logs: `s3://bucket/prefix/key` or a path."""

    @abstractmethod
    def check(self) -> None:
        """Raise a `StorageError` unless the store answers now (for a readiness probe)."""

    def get_bytes(self, key: str) -> bytes:
        with self.open(key) as f:
            return f.read()

    def exists(self, key: str) -> bool:
        try:
            self.info(key)
            return True
        except NotInStore:
            return False

    # Published folders (checkpoints) -----------------------------------------------------

    @abstractmethod
    def publish_folder(self, key: str, src: Path) -> dict[str, ObjectInfo]:
        """Make every file under `src` visible at `key/<relative path>` at once, replacing
        an earlier folder at `key`; returns the published files."""

    @abstractmethod
    def published(self, key: str) -> dict[str, ObjectInfo] | None:
        """The files of the folder published at `key` by relative path, or None."""

    @abstractmethod
    def published_folders(self, prefix: str) -> list[str]:
        """Names of the folders published directly under `prefix`, sorted."""

    @abstractmethod
    def delete_folder(self, key: str) -> int:
        """Unpublish the folder at `key` (readers stop seeing it first), then delete it."""

    @abstractmethod
    def collect_garbage(self, prefix: str, older_than_s: float = GARBAGE_GRACE_S) -> int:
        """Remove leftovers of interrupted publishes under `prefix` older than
        `older_than_s`; returns how many objects went."""

    @abstractmethod
    def open_published(self, key: str, rel: str) -> AbstractContextManager[BinaryIO]:
        """A stream of the file `rel` of the folder published at `key`."""

    def fetch_folder(self, key: str, dest: Path, cache: object | None = None) -> Path:
        """Copy the folder published at `key` into a new folder `dest` (staged, renamed);
        with a `ChecksumCache`, files whose sha256 it holds are not downloaded again."""
        files = self.published(key)
        if files is None:
            raise NotInStore("fetch", self.url_for(key), "no published folder there")
        dest = Path(dest)
        stage = dest.with_name(f".{dest.name}.fetch-{uuid.uuid4().hex[:12]}")
        try:
            for rel, meta in files.items():
                target = stage / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                if cache is not None and meta.sha256:
                    cache.copy_to(self, self.published_key(key, rel), meta.sha256, target)
                else:
                    with self.open_published(key, rel) as f, open(target, "wb") as out:
                        shutil.copyfileobj(f, out, 1 << 20)
            stage.mkdir(parents=True, exist_ok=True)  # an empty folder is one too
            if dest.exists():
                shutil.rmtree(dest)
            os.replace(stage, dest)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
        return dest

    def published_key(self, key: str, rel: str) -> str:
        """The object key holding the file `rel` of the folder published at `key`."""
        return join(key, rel)

    def checkpoints(self, prefix: str) -> list[Checkpoint]:
        """The published `task-<k>` folders under `prefix`, by k."""
        found = []
        for name in self.published_folders(prefix):
            task = checkpoint_task(name)
            files = self.published(join(prefix, name)) if task is not None else None
            if files is not None:
                found.append(Checkpoint(task, join(prefix, name), files))
        return sorted(found, key=lambda c: c.task)

    def latest_checkpoint(self, prefix: str) -> Checkpoint | None:
        """The published checkpoint with the highest task under `prefix`, or None."""
        found = self.checkpoints(prefix)
        return found[-1] if found else None

    def prune(self, prefix: str, keep: int, older_than_s: float = GARBAGE_GRACE_S) -> list[str]:
        """Keep the `keep` newest checkpoints under `prefix` (the final model and other
        objects stay), delete the older ones and the garbage of interrupted publishes;
        returns the keys of the deleted checkpoints."""
        if keep < 0:
            raise ValueError("keep must be >= 0")
        found = self.checkpoints(prefix)
        doomed = found[: max(len(found) - keep, 0)]
        for checkpoint in doomed:
            self.delete_folder(checkpoint.key)
        self.collect_garbage(prefix, older_than_s)
        return [c.key for c in doomed]
