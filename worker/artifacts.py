"""A job's artifacts in the artifact store (EWC_ARTIFACTS_URL), so any host can resume it.

The trainer writes into a local working folder (`working_dir`): `task-<k>/` after each
task, `model.keras` at the end, `tensorboard/` as it goes. On the local store (the default)
that folder *is* the store (`<artifacts>/experiments/<id>/`, today's layout) and nothing
here does anything. On a remote store (`s3://...`) the folder is only a working copy:

- before training, `JobArtifacts.prepare` empties it and fetches the latest checkpoint
  published in the store (`experiments/<id>/task-<k>/`), so a job whose host died resumes
  on this one from its last finished task (the store is the truth, not a local leftover);
- after each task, the new checkpoint is published whole (`publish_folder`: readers see all
  of it or none) together with the TensorBoard files that changed. The trainer writes the
  checkpoint right *after* `on_task_end`, so the publish happens at the next `should_stop()`
  poll (before the next task's first batch) or when the run ends;
- at the end the final model and the last TensorBoard files are stored, then the working
  copy (and what the fetch put in the `ChecksumCache`) is removed: a worker's disk holds
  one job's files at most.

A store that cannot be reached (`StorageUnavailable`) is waited for like the database
(`worker.retry.retry`, `EWC_DB_RETRY_S`; training pauses meanwhile, a shutdown cuts the wait
short); nothing is skipped. Only TensorBoard uploads are best effort, as writing them is.
Every message comes from `common.storage` and holds no credential.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from common.settings import Settings
from common.storage import (
    ArtifactStore,
    ChecksumCache,
    StorageError,
    StorageUnavailable,
    open_store,
)
from continual_core.events import Callback, TaskEnd
from worker.retry import one_line, retry

__all__ = ["JobArtifacts", "WorkerArtifacts", "experiment_key", "working_dir"]

log = logging.getLogger("ewc.worker")

T = TypeVar("T")

#: The final model's name in an experiment's folder (continual_core.trainer writes it).
MODEL = "model.keras"
#: The TensorBoard sub-folder (worker.tensorboard.TENSORBOARD_DIR).
TENSORBOARD = "tensorboard"


def experiment_key(experiment_id: int) -> str:
    """The store key of an experiment's folder: `experiments/<id>`."""
    return f"experiments/{int(experiment_id)}"


def working_dir(settings: Settings, experiment_id: int) -> Path:
    """The local folder the trainer writes a job's artifacts to. On a local store it is the
    store's own folder (default: <artifacts_dir>/experiments/<id>); on a remote store, the
    working copy under this worker's <artifacts_dir>."""
    url = settings.resolved_artifacts_url()
    key = experiment_key(experiment_id)
    if "://" in url and not url.startswith("file://"):
        return settings.resolved_artifacts_dir().joinpath(*key.split("/"))
    return open_store(url).local_path(key)  # type: ignore[attr-defined]


@dataclass
class WorkerArtifacts:
    """What one worker process builds once: the store, and the cache its fetches go to."""

    store: ArtifactStore
    cache: ChecksumCache

    @classmethod
    def from_settings(cls, settings: Settings) -> WorkerArtifacts:
        return cls(settings.artifact_store(), ChecksumCache(settings.data_dir / "cache"))


@dataclass
class JobArtifacts(Callback):
    """Keeps one job's working folder and the store in step (see the module's docstring).
    A `Callback`: put it after the TensorBoard callback, so a task's event file is flushed
    before it is uploaded."""

    experiment_id: int
    folder: Path  # the working folder (`working_dir`)
    artifacts: WorkerArtifacts
    budget_s: float = 120.0  # how long an operation waits for a store that is away
    interrupt: threading.Event = field(default_factory=threading.Event)  # worker shutdown
    pending: int | None = None  # task whose checkpoint is written but not yet published
    published: list[int] = field(default_factory=list)
    synced: bool = True  # everything the trainer wrote is in the store
    _uploaded: dict[str, tuple[int, int]] = field(default_factory=dict)  # tb file: size, mtime
    _fetched: list[str] = field(default_factory=list)  # sha256 of cache entries we made

    @property
    def remote(self) -> bool:
        return not self.artifacts.store.is_local

    @property
    def key(self) -> str:
        return experiment_key(self.experiment_id)

    def _call(self, what: str, call: Callable[[], T]) -> T:
        """`call()`, waiting for a store that is away (at most `budget_s`, not at shutdown)."""
        waited = 0.0

        def waiting(exc: Exception, _tries: int, pause: float, retrying: bool) -> None:
            nonlocal waited
            if retrying:
                waited += pause
                log.warning(
                    "event=storage_wait experiment_id=%s while=%s retry_in_s=%.1f error=%r",
                    self.experiment_id, what, pause, one_line(exc)[:300],
                )  # fmt: skip

        result = retry(
            call,
            retry_on=(StorageUnavailable,),
            budget_s=self.budget_s,
            interrupt=self.interrupt,
            on_failure=waiting,
        )
        if waited:
            log.info(
                "event=storage_back experiment_id=%s while=%s waited_s=%.1f",
                self.experiment_id, what, waited,
            )  # fmt: skip
        return result

    # Before the run ----------------------------------------------------------------------

    def prepare(self) -> int | None:
        """Remote store: a fresh working folder holding the latest published checkpoint;
        returns its task (None: nothing to resume, or the local store)."""
        if not self.remote:
            return None
        shutil.rmtree(self.folder, ignore_errors=True)  # the store is the truth
        store = self.artifacts.store
        latest = self._call("find_checkpoint", lambda: store.latest_checkpoint(self.key))
        if latest is None:
            log.info("event=no_checkpoint experiment_id=%s store=%s", self.experiment_id,
                     store.url_for(self.key))
            return None
        started = time.monotonic()
        dest = self.folder / f"task-{latest.task}"
        self._call("fetch_checkpoint",
                   lambda: store.fetch_folder(latest.key, dest, self.artifacts.cache))
        self._fetched += [f.sha256 for f in latest.files.values() if f.sha256]
        log.info(
            "event=checkpoint_fetched experiment_id=%s task=%s source=%s files=%s bytes=%s "
            "seconds=%.2f",
            self.experiment_id, latest.task, store.url_for(latest.key), len(latest.files),
            sum(f.size for f in latest.files.values()), time.monotonic() - started,
        )  # fmt: skip
        self.published.append(latest.task)
        return latest.task

    # During the run ----------------------------------------------------------------------

    def on_task_end(self, event: TaskEnd) -> None:
        if self.remote and event.checkpoint:
            self.pending, self.synced = event.task, False

    def should_stop(self) -> bool:
        """Publishes the checkpoint the trainer wrote after the last task (once it exists);
        never asks to stop."""
        if self.pending is not None and self._complete(self.pending):
            self.publish_pending()
        return False

    def _complete(self, task: int) -> bool:
        folder = self.folder / f"task-{task}"
        return (folder / "history.json").is_file() and (folder / "state.npz").is_file()

    def publish_pending(self) -> None:
        """Publish the written checkpoint not yet in the store, and the TensorBoard files;
        raises a `StorageError` when the store stays away."""
        task = self.pending
        if task is None or not self._complete(task):
            return
        store, src = self.artifacts.store, self.folder / f"task-{task}"
        started = time.monotonic()
        files = self._call("publish_checkpoint",
                           lambda: store.publish_folder(f"{self.key}/task-{task}", src))
        self.pending = None
        self.published.append(task)
        log.info(
            "event=checkpoint_published experiment_id=%s task=%s key=%s files=%s bytes=%s "
            "seconds=%.2f",
            self.experiment_id, task, store.url_for(f"{self.key}/task-{task}"), len(files),
            sum(f.size for f in files.values()), time.monotonic() - started,
        )  # fmt: skip
        self.upload_tensorboard()

    def upload_tensorboard(self) -> None:
        """Store the TensorBoard files that changed since their last upload (best effort:
        a store that stays away is logged, the job goes on)."""
        if not self.remote:
            return
        folder = self.folder / TENSORBOARD
        files = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
        for path in files:
            rel = path.relative_to(folder).as_posix()
            st = path.stat()
            if self._uploaded.get(rel) == (st.st_size, st.st_mtime_ns):
                continue
            try:
                self._call("tensorboard", lambda p=path, r=rel: self.artifacts.store.put_file(
                    f"{self.key}/{TENSORBOARD}/{r}", p))
            except StorageError as exc:
                log.warning("event=tensorboard_upload_failed experiment_id=%s file=%s error=%r",
                            self.experiment_id, rel, one_line(exc)[:300])
                return
            self._uploaded[rel] = (st.st_size, st.st_mtime_ns)

    # After the run -----------------------------------------------------------------------

    def finish(self, *, model: bool) -> None:
        """Store what the run left unstored: the last checkpoint, the TensorBoard files and,
        when `model`, the final model. Raises a `StorageError` when the store stays away."""
        if not self.remote:
            return
        self.publish_pending()
        self.upload_tensorboard()
        local = self.folder / MODEL
        if model and local.is_file():
            store = self.artifacts.store
            info = self._call("model", lambda: store.put_file(f"{self.key}/{MODEL}", local))
            log.info("event=model_stored experiment_id=%s key=%s bytes=%s", self.experiment_id,
                     store.url_for(f"{self.key}/{MODEL}"), info.size)
        self.synced = self.pending is None

    def settle(self) -> None:
        """After a run that did not succeed: store the last checkpoint and the TensorBoard
        files (waiting as usual, cut short at shutdown), never raising."""
        if not self.remote:
            return
        try:
            self.finish(model=False)
        except StorageError as exc:
            self.synced = False
            log.warning("event=artifacts_not_stored experiment_id=%s error=%r",
                        self.experiment_id, one_line(exc)[:300])

    def cleanup(self) -> None:
        """Remote store, everything stored: remove the working copy and the cache entries
        the fetch made (a worker keeps at most a cache, not every job it ran)."""
        if not self.remote or not self.synced:
            return
        shutil.rmtree(self.folder, ignore_errors=True)
        for sha in self._fetched:
            self.artifacts.cache.path_for(sha).unlink(missing_ok=True)
        log.info("event=working_copy_removed experiment_id=%s folder=%s", self.experiment_id,
                 self.folder)
