"""`worker.runner`: a claimed job trained for real (tiny specs on `digits`), every outcome.

These run the real training core on SQLite; `store.jobs` itself is tested on PostgreSQL too.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from common.settings import Settings
from continual_core.spec import ExperimentSpec
from continual_core.trainer import train
from store import claims
from store.db import unit_of_work
from store.models import EpochMetric, Experiment, JobStatus, TaskResult
from worker.runner import Outcome, checkpoint_dir, run_job

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

TINY = {
    "dataset": "digits",
    "model": "mlp",
    "dataset_update": "permute",
    "splits": 2,
    "epochs": 2,
    "seed": 0,
}
#: Long enough (~minutes) that it only ends when something stops it.
LONG = {**TINY, "epochs": 400, "batch_size": 8}


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        heartbeat_s=0.05,
        heartbeat_timeout_s=30,
        dataset_cache=tmp_path / "datasets",
    )


@pytest.fixture
def run(session_factory, make_user, make_job, settings) -> Callable[..., tuple[int, Outcome]]:
    """Submit `spec`, claim it as worker "w1" and run it; `shutdown` is the worker's flag."""
    owner = make_user("alice")

    def go(spec: dict, *, job_id: int | None = None, shutdown: threading.Event | None = None):
        job_id = job_id or make_job(owner, spec=spec)
        with unit_of_work(session_factory) as s:
            job = claims.claim_next_job(s, ["cpu"], "w1", 30, 3)
        assert job is not None and job.id == job_id
        return job_id, run_job(
            job,
            worker="w1",
            settings=settings,
            sessions=session_factory,
            device="CPU",
            shutting_down=shutdown,
        )

    return go


def when(factory, condition, action) -> threading.Thread:
    """In the background: wait until `condition(session)` holds, then `action(session)`."""

    def watch() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with unit_of_work(factory) as s:
                if condition(s):
                    action(s)
                    return
            time.sleep(0.01)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def epoch_rows(s, job_id):
    return s.scalars(
        select(EpochMetric).where(EpochMetric.experiment_id == job_id).order_by(EpochMetric.epoch)
    ).all()


def matrix(s, job_id):
    return [
        r.test_accuracy
        for r in s.scalars(
            select(TaskResult).where(TaskResult.experiment_id == job_id).order_by(TaskResult.task)
        )
    ]


def test_a_job_runs_to_success_with_every_metric_stored(run, session_factory, settings):
    job_id, outcome = run(TINY)
    assert outcome == Outcome(JobStatus.succeeded, None)
    direct = train(
        ExperimentSpec.model_validate(TINY), dataset_cache=settings.resolved_dataset_cache()
    )
    with session_factory() as s:
        job = s.get(Experiment, job_id)
        assert job.status == JobStatus.succeeded and job.error is None
        assert job.device == "CPU" and job.finished_at is not None
        assert (job.num_tasks, job.total_epochs, job.current_task, job.current_epoch) == (
            2,
            2,
            2,
            2,
        )
        assert job.summary == direct["summary"]
        assert job.versions and "tensorflow" in job.versions
        assert [(e.task, e.epoch, e.loss, e.val_accuracy) for e in epoch_rows(s, job_id)] == [
            (e["task"], e["epoch"], e["loss"], e["val_accuracy"]) for e in direct["epochs"]
        ]
        assert matrix(s, job_id) == direct["accuracy_matrix"]
    folder = checkpoint_dir(settings, job_id)
    assert (folder / "task-2").is_dir() and (folder / "model.keras").is_file()


def _open_event_files(folder: Path) -> list[str]:
    """Paths under `folder` this process holds open (Linux /proc)."""
    found = []
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = str(fd.readlink())
        except OSError:
            continue
        if target.startswith(str(folder)):
            found.append(target)
    return found


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs Linux /proc")
def test_a_finished_job_leaves_no_tensorboard_file_open(run, settings, monkeypatch):
    """A long-lived worker runs thousands of jobs: each one's event file must be closed by
    run_job itself, not left to the garbage collector (the callbacks are kept alive here,
    as anything holding a reference to them would)."""
    import worker.runner
    from worker.tensorboard import TensorBoardCallback

    kept: list[TensorBoardCallback] = []

    class Kept(TensorBoardCallback):
        def __init__(self, log_dir):
            super().__init__(log_dir)
            kept.append(self)

    monkeypatch.setattr(worker.runner, "TensorBoardCallback", Kept)
    job_id, outcome = run(TINY)
    assert len(kept) == 1
    assert outcome.status is JobStatus.succeeded
    folder = checkpoint_dir(settings, job_id) / "tensorboard"
    assert any(folder.glob("*/events.out.tfevents.*"))  # in the job's run folder
    assert _open_event_files(folder) == []


def test_a_cancel_stops_the_job_and_keeps_its_metrics(run, session_factory):
    def cancel(s):
        s.execute(Experiment.__table__.update().values(cancel_requested=True))

    when(
        session_factory,
        lambda s: s.scalar(select(func.count()).select_from(EpochMetric)) > 0,
        cancel,
    )
    job_id, outcome = run(LONG)
    assert outcome.status == JobStatus.cancelled
    with session_factory() as s:
        job = s.get(Experiment, job_id)
        assert job.status == JobStatus.cancelled and job.error.startswith("cancelled on request")
        rows = epoch_rows(s, job_id)
        assert 1 <= len(rows) < 400 and job.current_epoch == rows[-1].epoch


def test_the_time_limit_fails_the_job_with_the_reason(run, session_factory):
    job_id, outcome = run({**LONG, "time_limit_s": 1})
    assert outcome.status == JobStatus.failed
    with session_factory() as s:
        job = s.get(Experiment, job_id)
        assert job.status == JobStatus.failed
        assert job.error.startswith("time limit of 1 s reached")
        assert "time_limit_s" in job.error


def test_a_diverging_run_fails_with_task_and_epoch(run, session_factory):
    job_id, outcome = run({**TINY, "learning_rate": 1e30})
    assert outcome.status == JobStatus.failed
    with session_factory() as s:
        assert s.get(Experiment, job_id).error == (
            "TrainingDiverged: training loss became nan at task 1, epoch 1"
        )


def test_any_other_error_fails_the_job_with_one_readable_line(
    run, session_factory, make_user, make_job, settings
):
    job_id = make_job(make_user("bob"), spec=TINY)
    stale = checkpoint_dir(settings, job_id) / "task-1"  # left by some other experiment
    stale.mkdir(parents=True)
    (stale / "history.json").write_text('{"task": 1, "spec": {"dataset": "mnist"}}')
    np.savez(stale / "state.npz", x=np.zeros(1))
    _, outcome = run(TINY, job_id=job_id)
    assert outcome.status == JobStatus.failed
    with session_factory() as s:
        error = s.get(Experiment, job_id).error
    assert error.startswith("CheckpointMismatch: ") and "different experiment spec" in error
    assert "\n" not in error and "Traceback" not in error


def test_an_invalid_spec_in_the_row_fails_the_job(run, session_factory):
    _, outcome = run({"dataset": "digits", "model": "resnet"})
    assert outcome.status == JobStatus.failed
    assert outcome.error.startswith("invalid spec: model:")


def test_a_worker_shutdown_hands_the_job_back_and_the_next_run_resumes_it(
    run, session_factory, settings
):
    spec = {**TINY, "epochs": 10, "batch_size": 8}
    shutdown = threading.Event()
    when(session_factory, lambda s: bool(matrix(s, 1)), lambda s: shutdown.set())
    job_id, outcome = run(spec, shutdown=shutdown)
    assert outcome.status is None
    with session_factory() as s:
        job = s.get(Experiment, job_id)
        assert (job.status, job.worker, job.attempts) == (JobStatus.queued, None, 0)
        assert len(matrix(s, job_id)) == 1
    assert (checkpoint_dir(settings, job_id) / "task-1").is_dir()

    _, outcome = run(spec, job_id=job_id)  # another worker picks it up: resumes at task 2
    assert outcome.status == JobStatus.succeeded
    direct = train(
        ExperimentSpec.model_validate(spec), dataset_cache=settings.resolved_dataset_cache()
    )
    with session_factory() as s:
        assert matrix(s, job_id) == direct["accuracy_matrix"]
        assert [e.epoch for e in epoch_rows(s, job_id)] == list(range(1, 11))
        assert [e.loss for e in epoch_rows(s, job_id)] == [e["loss"] for e in direct["epochs"]]


def test_a_worker_that_lost_its_claim_stops_and_writes_nothing_more(run, session_factory):
    def take_over(s):
        s.execute(Experiment.__table__.update().values(worker="w2"))

    when(
        session_factory,
        lambda s: s.scalar(select(func.count()).select_from(EpochMetric)) > 0,
        take_over,
    )
    job_id, outcome = run(LONG)
    assert outcome == Outcome(None, "claim lost")
    with session_factory() as s:
        job = s.get(Experiment, job_id)
        assert (job.status, job.worker, job.error) == (JobStatus.running, "w2", None)


def test_tensorboard_files_are_optional(run, settings):
    settings.tensorboard = False  # EWC_TENSORBOARD=false
    job_id, outcome = run(TINY)
    assert outcome.status is JobStatus.succeeded
    assert not (checkpoint_dir(settings, job_id) / "tensorboard").exists()
