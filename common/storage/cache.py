"""A worker's local read-through cache of stored objects, keyed by their sha256.

`ChecksumCache(folder).fetch(store, key, sha256)` returns a local file with that content:
from the cache when it already holds `<folder>/<aa>/<sha256>`, else downloaded from the
store, checked against `sha256` and renamed into place (a download that died, or one with
the wrong content, never becomes a cache entry). Two workers or threads downloading the
same object at once both succeed; the last rename wins with identical bytes. The same
content under two keys (a dataset uploaded twice) is downloaded once.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import uuid
from pathlib import Path

from common.storage.base import ArtifactStore, StorageError

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class ChecksumCache:
    """Files by sha256 under `folder` (created on the first download)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def __repr__(self) -> str:
        return f"ChecksumCache({str(self.folder)!r})"

    def path_for(self, sha256: str) -> Path:
        if not _SHA256.match(sha256 or ""):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        return self.folder / sha256[:2] / sha256

    def __contains__(self, sha256: str) -> bool:
        return self.path_for(sha256).is_file()

    def fetch(self, store: ArtifactStore, key: str, sha256: str) -> Path:
        """A local file holding the object `key`, whose content has digest `sha256`."""
        path = self.path_for(sha256)
        if path.is_file():
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{sha256}.{uuid.uuid4().hex[:12]}")
        try:
            store.get_file(key, tmp)
            got = sha256_of(tmp)
            if got != sha256:
                raise StorageError("fetch", store.url_for(key),
                                   f"content has sha256 {got[:12]}…, expected {sha256[:12]}…")
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path

    def copy_to(self, store: ArtifactStore, key: str, sha256: str, dest: Path) -> Path:
        """`fetch`, then a copy at `dest` (a hard link where the file system allows)."""
        src = self.fetch(store, key, sha256)
        dest = Path(dest)
        dest.unlink(missing_ok=True)
        try:
            os.link(src, dest)
        except OSError:
            shutil.copyfile(src, dest)
        return dest
