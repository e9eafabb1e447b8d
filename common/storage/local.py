"""The artifact store as a local folder: today's `<artifacts_dir>` layout, unchanged.

`key` is the file `<root>/<key>`. A file is written beside its target as
`.<name>.put-<id>` and renamed over it; a published folder is staged as
`.<name>.publish-<id>/` and renamed into place (an earlier folder first moved aside as
`.<name>.old-<id>/`, then deleted), so a reader sees the whole old or the whole new
folder. A folder in place *is* published: continual_core.checkpoint writes its
`task-<k>/` the same way (staged as `.task-<k>-<random>/`), so a worker on the local
store needs no publish step at all. Those dot-named leftovers of a crash are what
`collect_garbage` removes; `list` never shows them.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from common.storage.base import (
    GARBAGE_GRACE_S,
    ArtifactStore,
    NotInStore,
    ObjectInfo,
    StorageError,
    clean_key,
    folder_files,
    join,
)

#: Names of what an interrupted write leaves: ours, and continual_core's staged checkpoints.
GARBAGE = re.compile(r"^\.(.+\.(put|publish|old|fetch)-[0-9a-f]+|task-\d+-.+)$")


def _info(key: str, path: Path, sha256: str | None = None) -> ObjectInfo:
    st = path.stat()
    return ObjectInfo(key, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC), sha256)


def _copy_hashing(src: BinaryIO, dest: Path) -> str:
    digest = hashlib.sha256()
    with open(dest, "wb") as out:
        while chunk := src.read(1 << 20):
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


class LocalStore(ArtifactStore):
    """Artifacts under the folder `root` (created on the first write)."""

    is_local = True

    def __init__(self, root: Path):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    def url_for(self, key: str = "") -> str:
        return str(self.root / key) if key else str(self.root)

    def local_path(self, key: str) -> Path:
        """The file (or folder) of `key` on this machine (it may not exist)."""
        return self.root.joinpath(*clean_key(key).split("/"))

    @contextmanager
    def _errors(self, operation: str, key: str) -> Iterator[None]:
        try:
            yield
        except FileNotFoundError:
            raise NotInStore(operation, self.url_for(key), "no such file") from None
        except OSError as exc:
            raise StorageError(operation, self.url_for(key), exc.strerror or type(exc).__name__) from None

    def check(self) -> None:
        with self._errors("check", ""):
            self.root.mkdir(parents=True, exist_ok=True)
            if not os.access(self.root, os.W_OK | os.X_OK):
                raise PermissionError(13, "not writable")

    def _write(self, key: str, fill) -> ObjectInfo:
        dest = self.local_path(key)
        with self._errors("put", key):
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(f".{dest.name}.put-{uuid.uuid4().hex[:12]}")
            try:
                sha = fill(tmp)
                os.replace(tmp, dest)
            finally:
                tmp.unlink(missing_ok=True)
            return _info(clean_key(key), dest, sha)

    def put_file(self, key: str, src: Path) -> ObjectInfo:
        def fill(tmp: Path) -> str:
            with open(src, "rb") as f:
                return _copy_hashing(f, tmp)

        return self._write(key, fill)

    def put_bytes(self, key: str, data: bytes) -> ObjectInfo:
        def fill(tmp: Path) -> str:
            tmp.write_bytes(data)
            return hashlib.sha256(data).hexdigest()

        return self._write(key, fill)

    def get_file(self, key: str, dest: Path) -> Path:
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.fetch-{uuid.uuid4().hex[:12]}")
        try:
            with self._errors("get", key), open(self.local_path(key), "rb") as f:
                _copy_hashing(f, tmp)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        return dest

    @contextmanager
    def open(self, key: str) -> Iterator[BinaryIO]:
        with self._errors("open", key):
            f = open(self.local_path(key), "rb")  # noqa: SIM115 - closed below
        with f:
            yield f

    def info(self, key: str) -> ObjectInfo:
        path = self.local_path(key)
        with self._errors("info", key):
            if not path.is_file():
                raise FileNotFoundError(key)
            return _info(clean_key(key), path)

    def _files(self, folder: Path) -> Iterator[Path]:
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames[:] = sorted(d for d in dirnames if not GARBAGE.match(d))
            for name in sorted(filenames):
                path = Path(dirpath) / name
                if not GARBAGE.match(name) and path.is_file() and not path.is_symlink():
                    yield path

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        folder = self.local_path(prefix) if prefix else self.root
        with self._errors("list", prefix):
            found = [_info(path.relative_to(self.root).as_posix(), path)
                     for path in self._files(folder)]
        return sorted(found, key=lambda o: o.key)

    def delete(self, key: str) -> None:
        with self._errors("delete", key):
            self.local_path(key).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> int:
        folder = self.local_path(prefix)
        if not folder.is_dir():
            return 0
        count = sum(len(files) for _, _, files in os.walk(folder))
        with self._errors("delete", prefix):
            shutil.rmtree(folder)
        return count

    # Published folders -------------------------------------------------------------------

    def publish_folder(self, key: str, src: Path) -> dict[str, ObjectInfo]:
        dest = self.local_path(key)
        if Path(src).resolve() == dest.resolve():  # written in place (continual_core)
            return self.published(key) or {}
        tag = uuid.uuid4().hex[:12]
        stage = dest.with_name(f".{dest.name}.publish-{tag}")
        old = dest.with_name(f".{dest.name}.old-{tag}")
        with self._errors("publish", key):
            try:
                stage.mkdir(parents=True)
                for rel, path in folder_files(src):
                    (stage / rel).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, stage / rel)
                if dest.exists():
                    os.replace(dest, old)
                os.replace(stage, dest)
            finally:
                shutil.rmtree(stage, ignore_errors=True)
                shutil.rmtree(old, ignore_errors=True)
        return self.published(key) or {}

    def published(self, key: str) -> dict[str, ObjectInfo] | None:
        folder = self.local_path(key)
        if not folder.is_dir() or GARBAGE.match(folder.name):
            return None
        with self._errors("published", key):
            return {p.relative_to(folder).as_posix(): _info(join(key, p.relative_to(folder).as_posix()), p)
                    for p in self._files(folder)}

    def published_folders(self, prefix: str) -> list[str]:
        folder = self.local_path(prefix) if prefix else self.root
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir()
                      if p.is_dir() and not p.is_symlink() and not GARBAGE.match(p.name))

    def open_published(self, key: str, rel: str):
        return self.open(join(key, rel))

    def delete_folder(self, key: str) -> int:
        dest = self.local_path(key)
        if not dest.is_dir():
            return 0
        gone = dest.with_name(f".{dest.name}.old-{uuid.uuid4().hex[:12]}")
        with self._errors("delete", key):
            os.replace(dest, gone)  # unpublished at once; the files go after
            count = sum(len(files) for _, _, files in os.walk(gone))
            shutil.rmtree(gone)
        return count

    def collect_garbage(self, prefix: str, older_than_s: float = GARBAGE_GRACE_S) -> int:
        folder = self.local_path(prefix) if prefix else self.root
        cutoff, count = time.time() - older_than_s, 0
        for dirpath, dirnames, filenames in os.walk(folder):
            for name in [*dirnames, *filenames]:
                path = Path(dirpath) / name
                if not GARBAGE.match(name) or path.lstat().st_mtime > cutoff:
                    continue
                if path.is_dir() and not path.is_symlink():
                    count += sum(len(files) for _, _, files in os.walk(path))
                    shutil.rmtree(path, ignore_errors=True)
                    dirnames.remove(name)
                else:
                    path.unlink(missing_ok=True)
                    count += 1
        return count
