"""Artifacts of an experiment on disk: listing, safe path resolution, zips, retention.

Layout (written by the worker / training core): `<artifacts_dir>/experiments/<id>/`
holds `model.keras` (the final model), `task-<k>/` (the checkpoint after task k) and
optionally `tensorboard/` (event files). A folder is offered for download as `<name>.zip`.

Safety: every path that comes from a request goes through `resolve_artifact`, which
refuses absolute paths, `..` parts, NUL bytes and anything whose resolved location
(symlinks followed) is not inside the experiment's folder. Zips skip symlinks that leave
the folder.

Retention: `prune_checkpoints` deletes the `task-*` checkpoint folders of experiments that
finished more than `retention_days` ago (the final model and TensorBoard files are kept).
Sizes are bytes; times are timezone-aware UTC.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path, PurePosixPath

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.errors import InvalidInput, NotFound
from store.models import Experiment, utcnow
from store.vocabulary import FINISHED

CHECKPOINT_PREFIX = "task-"
#: Longest file name (one path component) and whole path a request may name, in UTF-8
#: bytes: what Linux file systems allow (NAME_MAX, PATH_MAX); longer names cannot exist.
MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 1024
ZIP_SUFFIX = ".zip"


class ArtifactPathRefused(InvalidInput):
    """A requested artifact path could leave the experiment's folder."""

    def __init__(self, path: str, why: str):
        super().__init__(f"artifact path {path!r} is refused: {why}")
        self.path = path
        self.field = "path"


class ArtifactNotFound(NotFound):
    def __init__(self, experiment_id: int, path: str):
        super().__init__(
            f"experiment {experiment_id} has no artifact {path!r}; "
            f"see GET /v1/experiments/{experiment_id}/artifacts"
        )


@dataclass(frozen=True)
class Artifact:
    """One downloadable thing: a file, or a folder served as a zip."""

    path: str  # relative to the experiment's folder, POSIX; folders end in ".zip"
    kind: str  # "model", "checkpoint", "tensorboard" or "file"
    size: int  # bytes (for a folder: the sum of its files, before zipping)
    modified: datetime
    files: int = 1  # number of files (a folder's count)


def experiment_dir(artifacts_dir: Path, experiment_id: int) -> Path:
    """The folder of one experiment's artifacts (it may not exist)."""
    return Path(artifacts_dir) / "experiments" / str(int(experiment_id))


def _kind(name: str) -> str:
    if name == "model.keras":
        return "model"
    if name.startswith(CHECKPOINT_PREFIX):
        return "checkpoint"
    if name == "tensorboard":
        return "tensorboard"
    return "file"


def _inside(path: Path, root: Path) -> bool:
    try:
        return path.resolve(strict=False).is_relative_to(root)
    except (OSError, RuntimeError):  # a symlink loop
        return False


def _walk_files(folder: Path, root: Path) -> Iterator[Path]:
    """Regular files under `folder` whose real location stays inside `root`, sorted."""
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            p = Path(dirpath) / name
            if _inside(p, root) and p.is_file():
                yield p


def list_artifacts(artifacts_dir: Path, experiment_id: int) -> list[Artifact]:
    """Every artifact of the experiment: top-level files, and each folder as `<name>.zip`.

    Sorted: the final model first, then checkpoints by task number, then the rest.
    An experiment without a folder has none (an empty list).
    """
    folder = experiment_dir(artifacts_dir, experiment_id)
    if not folder.is_dir():
        return []
    root = folder.resolve()
    items: list[Artifact] = []
    for entry in folder.iterdir():
        if not _inside(entry, root):
            continue
        if entry.is_dir():
            files = list(_walk_files(entry, root))
            if not files:
                continue
            stats = [f.stat() for f in files]
            items.append(
                Artifact(
                    path=entry.name + ZIP_SUFFIX,
                    kind=_kind(entry.name),
                    size=sum(s.st_size for s in stats),
                    modified=datetime.fromtimestamp(max(s.st_mtime for s in stats)).astimezone(),
                    files=len(files),
                )
            )
        elif entry.is_file():
            st = entry.stat()
            items.append(
                Artifact(
                    path=entry.name,
                    kind=_kind(entry.name),
                    size=st.st_size,
                    modified=datetime.fromtimestamp(st.st_mtime).astimezone(),
                )
            )
    return sort_artifacts(items)


def sort_artifacts(items: Iterable[Artifact]) -> list[Artifact]:
    """The final model first, then checkpoints by task number, then the rest."""

    def order(a: Artifact) -> tuple:
        rank = {"model": 0, "checkpoint": 1, "tensorboard": 2}.get(a.kind, 3)
        digits = a.path.removeprefix(CHECKPOINT_PREFIX).removesuffix(ZIP_SUFFIX)
        return (rank, int(digits) if digits.isdigit() else 0, a.path)

    return sorted(items, key=order)


def group_objects(objects: Iterable[tuple[str, int, datetime]]) -> list[Artifact]:
    """The artifacts of an experiment kept as objects (an artifact store that is not this
    machine's folder), from (path relative to the experiment's folder, size, modified) of
    each: a top-level object is a file, a folder's objects are one `<name>.zip`. Same
    shape and order as `list_artifacts`."""
    files: list[Artifact] = []
    folders: dict[str, list[tuple[int, datetime]]] = {}
    for rel, size, modified in objects:
        name, _, rest = rel.partition("/")
        if rest:
            folders.setdefault(name, []).append((size, modified))
        else:
            files.append(Artifact(path=name, kind=_kind(name), size=size, modified=modified))
    for name, entries in folders.items():
        files.append(Artifact(path=name + ZIP_SUFFIX, kind=_kind(name),
                              size=sum(s for s, _ in entries),
                              modified=max(m for _, m in entries), files=len(entries)))
    return sort_artifacts(files)


def check_request_path(path: str) -> None:
    """Refuse (`ArtifactPathRefused`, 422) a requested artifact path that is empty, holds
    a NUL byte or a backslash, is absolute, has `.`/`..` parts or names longer than a file
    system allows; what `resolve_artifact` checks before it looks at the folder, and what
    any store's key of a request goes through."""
    if not path or "\x00" in path:
        raise ArtifactPathRefused(path, "empty or contains a NUL byte")
    if "\\" in path:
        raise ArtifactPathRefused(path, "use forward slashes")
    pure = PurePosixPath(path)
    if pure.is_absolute() or path.startswith("~"):
        raise ArtifactPathRefused(path, "must be relative to the experiment's artifacts")
    if any(part in ("..", ".") for part in path.split("/")):
        raise ArtifactPathRefused(path, "'..' and '.' are not allowed")
    if len(path.encode("utf-8", "replace")) > MAX_PATH_BYTES:
        raise ArtifactPathRefused(path[:64] + "…", f"longer than {MAX_PATH_BYTES} bytes")
    if any(len(part.encode("utf-8", "replace")) > MAX_NAME_BYTES for part in path.split("/")):
        raise ArtifactPathRefused(
            path[:64] + "…", f"a path component is longer than {MAX_NAME_BYTES} bytes"
        )


def resolve_artifact(artifacts_dir: Path, experiment_id: int, path: str) -> tuple[Path, bool]:
    """(location, is_folder) of a requested artifact, checked to stay inside the folder.

    `path` is relative, POSIX (`model.keras`, `task-1/weights.h5`, `task-1.zip`). A
    `<folder>.zip` that is not a real file names the folder, to be zipped. Raises
    `ArtifactPathRefused` (422) for absolute paths, `..`, backslashes, NUL, names longer
    than a file system allows, and anything that resolves outside the experiment's folder
    (symlinks included); `ArtifactNotFound` (404) when nothing is there.
    """
    check_request_path(path)
    pure = PurePosixPath(path)
    folder = experiment_dir(artifacts_dir, experiment_id)
    if not folder.is_dir():
        raise ArtifactNotFound(experiment_id, path)
    root = folder.resolve()
    candidate = folder.joinpath(*pure.parts)
    is_folder = False
    if not candidate.exists() and path.endswith(ZIP_SUFFIX):
        candidate = folder.joinpath(*PurePosixPath(path.removesuffix(ZIP_SUFFIX)).parts)
        is_folder = True
    try:
        real = candidate.resolve(strict=True)
    except (OSError, RuntimeError):
        raise ArtifactNotFound(experiment_id, path) from None
    if not real.is_relative_to(root):
        raise ArtifactPathRefused(path, "it points outside the experiment's artifacts")
    if is_folder and not real.is_dir():
        raise ArtifactNotFound(experiment_id, path)
    if not is_folder and not real.is_file():
        # A folder asked without ".zip": point at the zip.
        raise ArtifactNotFound(experiment_id, path + (ZIP_SUFFIX if real.is_dir() else ""))
    return real, is_folder


def zip_folder(folder: Path, root: Path) -> tempfile.SpooledTemporaryFile:
    """A zip of `folder`'s files (paths relative to it), rewound, as a spooled temp file.

    Files whose real location is outside `root` (symlinks out) are left out.
    """
    spool = tempfile.SpooledTemporaryFile(max_size=32 * 1024 * 1024)  # noqa: SIM115 (returned)
    with zipfile.ZipFile(spool, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for f in _walk_files(folder, root):
            zf.write(f, arcname=f.relative_to(folder).as_posix())
    spool.seek(0)
    return spool


def iter_chunks(fileobj: io.IOBase, chunk_size: int = 256 * 1024) -> Iterator[bytes]:
    """Read `fileobj` in chunks, closing it at the end."""
    try:
        while chunk := fileobj.read(chunk_size):
            yield chunk
    finally:
        fileobj.close()


# Retention --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PrunedCheckpoint:
    """One deleted checkpoint folder."""

    experiment_id: int
    path: Path
    bytes_freed: int


def _folder_size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file() and not f.is_symlink())


def expired_experiments(
    session: Session, retention_days: float, *, now: datetime | None = None
) -> list[int]:
    """Ids of the succeeded, failed or cancelled experiments whose `finished_at` is more
    than `retention_days` ago: those whose checkpoints retention deletes (none when
    `retention_days` ≤ 0). Also used for an artifact store that is not this folder."""
    if retention_days <= 0:
        return []
    cutoff = (now or utcnow()) - timedelta(days=retention_days)
    return list(
        session.scalars(
            select(Experiment.id).where(
                Experiment.status.in_(FINISHED),
                Experiment.finished_at.is_not(None),
                Experiment.finished_at < cutoff,
            )
        )
    )


def prune_checkpoints(
    session: Session,
    artifacts_dir: Path,
    retention_days: float,
    *,
    now: datetime | None = None,
    dry_run: bool = False,
) -> list[PrunedCheckpoint]:
    """Delete the `task-*` checkpoints of experiments finished over `retention_days` ago.

    Only succeeded, failed or cancelled experiments whose `finished_at` is older than the
    cutoff lose their checkpoints; `model.keras` and `tensorboard/` stay. Queued and running
    jobs are never touched (a resumed job needs its checkpoints). `retention_days` ≤ 0
    keeps everything. Returns what was (or, with `dry_run`, would be) deleted.
    """
    pruned = []
    for exp_id in expired_experiments(session, retention_days, now=now):
        folder = experiment_dir(artifacts_dir, exp_id)
        if not folder.is_dir():
            continue
        for entry in sorted(folder.glob(CHECKPOINT_PREFIX + "*")):
            if entry.is_symlink():
                size = 0
                if not dry_run:
                    entry.unlink()  # remove the link, never what it points at
            elif entry.is_dir():
                size = _folder_size(entry)
                if not dry_run:
                    shutil.rmtree(entry)
            else:
                size = entry.stat().st_size
                if not dry_run:
                    entry.unlink()
            pruned.append(PrunedCheckpoint(exp_id, entry, size))
    return pruned
