"""A worker's local read-through cache of stored objects, keyed by their sha256.

`ChecksumCache(folder).fetch(store, key, sha256)` returns a local file with that content:
from the cache when it already holds `<folder>/<aa>/<sha256>`, else downloaded from the
store, checked against `sha256` and renamed into place (a download that died, or one with
the wrong content, never becomes a cache entry). Two workers or threads downloading the
same object at once both succeed; the last rename wins with identical bytes. The same
content under two keys (a dataset uploaded twice) is downloaded once.

A cache hit touches its file (its mtime is "last used"), so `prune(max_bytes, keep=...)`
can bound the folder by removing the least recently used entries first, never those
named in `keep` nor those used in the last `recent_s` seconds (another process on the
host may be about to read them). A download in progress (`.<sha>.<tmp>`) is no entry.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from common.storage.base import ArtifactStore, StorageError

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class CacheEntry:
    """One cached file: its sha256, path, size in bytes and last use (mtime, epoch s)."""

    sha256: str
    path: Path
    size: int
    used_at: float


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
        if path.is_file() and self.touch(sha256):
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

    def touch(self, sha256: str) -> bool:
        """Mark an entry as used now (what `prune` orders by); False when it is not here."""
        try:
            os.utime(self.path_for(sha256))
        except FileNotFoundError:
            return False
        return True

    def entries(self) -> list[CacheEntry]:
        """Every cached file, least recently used first."""
        found = []
        for path in self.folder.glob("??/*") if self.folder.is_dir() else ():
            if not _SHA256.match(path.name) or path.parent.name != path.name[:2]:
                continue  # a download in progress, or not ours
            try:
                info = path.stat()
            except FileNotFoundError:  # pruned by another process meanwhile
                continue
            found.append(CacheEntry(path.name, path, info.st_size, info.st_mtime))
        return sorted(found, key=lambda e: (e.used_at, e.sha256))

    def size(self) -> int:
        """Bytes the cached files take."""
        return sum(e.size for e in self.entries())

    def prune(
        self, max_bytes: int, keep: Iterable[str] = (), *, recent_s: float = 0.0
    ) -> list[CacheEntry]:
        """Remove the least recently used files until at most `max_bytes` remain; never
        those whose sha256 is in `keep` nor those used less than `recent_s` seconds ago (so
        the cache may stay above the bound). Returns what was removed, oldest first."""
        kept = set(keep)
        entries = self.entries()
        total, cutoff = sum(e.size for e in entries), time.time() - recent_s
        removed = []
        for entry in entries:
            if total <= max_bytes:
                break
            if entry.sha256 in kept or (recent_s > 0 and entry.used_at > cutoff):
                continue
            try:
                entry.path.unlink()
            except FileNotFoundError:  # another process pruned it first
                pass
            total -= entry.size
            removed.append(entry)
        return removed
