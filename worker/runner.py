"""Run one claimed job: spec from the row → `continual_core.trainer.train` → the database.

This module is the job's flow only. Beside it: the callback (`worker.callback`) writes
every epoch row and task row the moment the training core reports it (from a thread of its
own, so training does not wait for the database; all written before the job's ending, and
a task's rows before its checkpoint), and the TensorBoard files after them; a watch thread
(`worker.watch`) keeps the claim alive (the job's heartbeat) and notices a cancel within
`CANCEL_POLL_S` seconds; the callback's `should_stop()` (polled by the trainer before
every batch, it only reads a flag) turns a cancel, the time limit, a lost claim or a
worker shutdown into a clean stop after the current batch; `worker.outcome` writes how the
job ended. Outcomes:

- the trainer returns → `succeeded` with summary, timings and versions;
- cancel requested → `cancelled` (metrics so far kept);
- time limit → `failed` with the limit and where it struck;
- `TrainingDiverged` → `failed` with its message (task, epoch);
- any other exception → `failed` with a one-line error (full traceback in the log);
- worker shutting down → handed back to the queue (`queued`), resumed from its last
  checkpoint by the next worker;
- the claim was lost (another worker took the job over) → nothing more is written.

Artifacts go through the artifact store (`worker.artifacts`): on a remote store the job
starts from the latest checkpoint published there, whichever host wrote it, and each new
checkpoint, the TensorBoard files and the final model are stored as they are written; a
final model that cannot be stored fails the job (its checkpoints stay).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from common.settings import Settings
from common.storage import StorageError
from continual_core.events import CallbackList, StopRequested, TrainingDiverged
from continual_core.spec import ExperimentSpec, validation_problems
from store.models import Experiment, JobStatus
from worker.artifacts import JobArtifacts, WorkerArtifacts, working_dir
from worker.callback import StoreCallback
from worker.datasets import prepare_dataset
from worker.joblog import captured
from worker.outcome import Outcome, finish, stopped
from worker.retry import DATABASE_AWAY, one_line
from worker.tensorboard import TensorBoardCallback
from worker.watch import JobWatch, StopReason

__all__ = ["Outcome", "checkpoint_dir", "run_job", "time_limit_s"]

log = logging.getLogger("ewc.worker")


def checkpoint_dir(settings: Settings, experiment_id: int) -> Path:
    """The folder of a job's checkpoints and final model: <artifacts>/experiments/<id>/
    (on a remote artifact store, this worker's working copy; `worker.artifacts`)."""
    return working_dir(settings, experiment_id)


def time_limit_s(settings: Settings, spec: ExperimentSpec) -> int:
    """The job's run-time limit in seconds: its own, capped by the server's."""
    if spec.time_limit_s is None:
        return settings.job_time_limit_s
    return min(spec.time_limit_s, settings.job_time_limit_s)


@captured  # the job's log lines and traceback, stored (`worker.joblog`)
def run_job(
    job: Experiment,
    *,
    worker: str,
    settings: Settings,
    sessions: sessionmaker[Session],
    device: str,
    shutting_down: threading.Event | None = None,
    artifacts: WorkerArtifacts | None = None,
) -> Outcome:
    """Train a job this worker has just claimed and record how it ended.

    Never raises for a problem of the job itself (bad spec, divergence, a bug in the run):
    those end the job `failed` with a readable error. Returns the outcome. `artifacts`:
    the worker's store and cache (built from `settings` when not given).
    """
    started = time.monotonic()
    try:
        spec = ExperimentSpec.model_validate(job.spec)
    except ValidationError as exc:
        problems = "; ".join(f"{f}: {m}" for f, m in validation_problems(exc))
        return finish(
            job.id, worker, sessions, JobStatus.failed, error=f"invalid spec: {problems}"
        )

    limit = time_limit_s(settings, spec)
    callback = StoreCallback(
        experiment_id=job.id,
        worker=worker,
        sessions=sessions,
        device=device,
        deadline=started + limit,
        db_retry_s=settings.db_retry_s,
        shutting_down=shutting_down or threading.Event(),
    )
    folder = checkpoint_dir(settings, job.id)
    sync = JobArtifacts(
        experiment_id=job.id,
        folder=folder,
        artifacts=artifacts or WorkerArtifacts.from_settings(settings),
        budget_s=settings.db_retry_s,
        interrupt=callback.shutting_down,
    )
    tensorboard = (TensorBoardCallback.for_job(folder, job.id, job.name, spec.to_json_dict())
                   if settings.tensorboard else None)  # fmt: skip
    if tensorboard is not None:  # its files are written behind the training, as the rows
        callback.followers.append(tensorboard)
    heartbeat = JobWatch(callback, settings.heartbeat_s)
    log.info(
        "event=job_start experiment_id=%s worker=%s attempt=%s queue=%s time_limit_s=%s",
        job.id,
        worker,
        job.attempts,
        job.queue,
        limit,
    )

    def settle(exc: BaseException | None = None) -> None:
        # A run that did not succeed: its last checkpoint and event files go to the store
        # before its ending is written (the claim kept meanwhile), unless the store failed.
        if tensorboard is not None:
            tensorboard.close()
        if isinstance(exc, StorageError):
            sync.synced = False
        else:
            sync.settle()

    heartbeat.start()
    try:
        from continual_core.compiled import worker_learners  # TensorFlow: only in the worker
        from continual_core.trainer import train

        sync.prepare()
        prepare_dataset(spec, settings, sync.artifacts.store, budget_s=settings.db_retry_s,
                        interrupt=callback.shutting_down)  # user:<name>: its file, cached
        try:
            result = train(
                spec,
                dataset_cache=settings.resolved_dataset_cache(),
                callback=CallbackList([callback, sync]),
                checkpoint_dir=folder,
                resume=True,
                learners=worker_learners() if settings.compile_cache else None,
            )
        finally:
            callback.close()  # every metric written before the job's ending is
        callback.check()  # a metric write that failed for good fails the job
        if tensorboard is not None:
            tensorboard.write_summary(result.get("summary"))  # the HParams tab's metrics
            tensorboard.close()  # the event file whole, before it is stored
        sync.finish(model=True)
    except StopRequested:
        settle()
        return stopped(job.id, worker, sessions, callback, limit)
    except TrainingDiverged as exc:
        log.warning("event=job_diverged experiment_id=%s error=%r", job.id, str(exc))
        settle()
        return finish(
            job.id,
            worker,
            sessions,
            JobStatus.failed,
            error=one_line(exc),
            retry_s=settings.db_retry_s,
        )
    except Exception as exc:
        settle(exc)
        if isinstance(exc, (*DATABASE_AWAY, StorageError)) and callback.shutting_down.is_set():
            # Stopping while the database or the store is away: not a failure of the job.
            log.warning("event=write_failed_at_shutdown experiment_id=%s", job.id)
            callback.request_stop(StopReason.shutdown)
            return stopped(job.id, worker, sessions, callback, limit)
        log.exception("event=job_crashed experiment_id=%s", job.id)
        if callback.stop_reason is StopReason.lost:
            return Outcome(None, "claim lost")
        return finish(
            job.id,
            worker,
            sessions,
            JobStatus.failed,
            error=one_line(exc),
            retry_s=settings.db_retry_s,
        )
    finally:
        heartbeat.stop()
        if tensorboard is not None:
            tensorboard.close()  # one event file per job: a long-lived worker must not leak them
        sync.cleanup()  # remote store: the working copy goes once everything is stored
    if callback.stop_reason is StopReason.lost:
        return Outcome(None, "claim lost")
    outcome = finish(
        job.id,
        worker,
        sessions,
        JobStatus.succeeded,
        summary=result.get("summary"),
        timings=result.get("timings"),
        versions=result.get("versions"),
        retry_s=settings.db_retry_s,
    )
    log.info(
        "event=job_end experiment_id=%s status=%s total_s=%.1f summary=%s",
        job.id,
        outcome.status.value if outcome.status else None,
        time.monotonic() - started,
        result.get("summary"),
    )
    return outcome

