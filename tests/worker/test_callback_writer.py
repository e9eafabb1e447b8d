"""`worker.callback.StoreCallback`: the trainer's events written behind the training.

The training thread hands events over and goes on; the rows still land in order, a task's
rows are written before `on_task_end` returns (its checkpoint comes next), `close()` leaves
nothing unwritten (the job's ending comes after it), a write that fails for good is raised
on the training thread, and a lost claim stops the run and writes nothing more.
Every test runs on SQLite and on a real PostgreSQL database (see `database_url`).
"""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from continual_core.events import Callback, EpochEnd, RunStart, TaskEnd
from store import claims, jobs
from store.db import unit_of_work
from store.models import EpochMetric, Experiment, TaskResult
from worker.callback import MAX_PENDING, StoreCallback
from worker.watch import StopReason


def running_job(session_factory, make_user, make_job, worker: str = "w1") -> int:
    job_id = make_job(make_user("alice"))
    with unit_of_work(session_factory) as s:
        assert claims.claim_next_job(s, ["cpu"], worker, 30.0, 3).id == job_id
    return job_id


def callback_for(session_factory, job_id: int, **extra) -> StoreCallback:
    return StoreCallback(experiment_id=job_id, worker="w1", sessions=session_factory,
                         device="CPU", deadline=time.monotonic() + 600, **extra)  # fmt: skip


def epoch(n: int, task: int = 1) -> EpochEnd:
    return EpochEnd(task=task, epoch=n, task_epoch=n, loss=1.0 / n, val_accuracy=[0.5],
                    train_s=0.01, eval_s=0.0)  # fmt: skip


def rows(session_factory, job_id: int) -> tuple[list[int], list[int]]:
    with session_factory() as s:
        epochs = s.scalars(select(EpochMetric.epoch).where(EpochMetric.experiment_id == job_id)
                           .order_by(EpochMetric.epoch)).all()  # fmt: skip
        tasks = s.scalars(select(TaskResult.task).where(TaskResult.experiment_id == job_id)).all()
    return list(epochs), list(tasks)


class Recorder(Callback):
    """A follower: the events it heard, and on which thread."""

    def __init__(self) -> None:
        self.heard: list[tuple[str, int]] = []

    def on_run_start(self, event: RunStart) -> None:
        self.heard.append(("run", threading.get_ident()))

    def on_epoch_end(self, event: EpochEnd) -> None:
        self.heard.append((f"epoch {event.epoch}", threading.get_ident()))

    def on_task_end(self, event: TaskEnd) -> None:
        self.heard.append((f"task {event.task}", threading.get_ident()))


def test_rows_land_in_order_behind_the_training_and_a_task_waits_for_its_rows(
    session_factory, make_user, make_job
):
    job_id = running_job(session_factory, make_user, make_job)
    follower = Recorder()
    cb = callback_for(session_factory, job_id, followers=[follower])
    cb.on_run_start(RunStart(num_tasks=2, epochs_per_task=[3, 3], first_task=1))
    for n in (1, 2, 3):
        cb.on_epoch_end(epoch(n))
    cb.on_task_end(TaskEnd(task=1, test_accuracy=[0.5, 0.1]))
    # on_task_end returned: the task's rows are in the database (its checkpoint comes next)
    assert rows(session_factory, job_id) == ([1, 2, 3], [1])
    for n in (4, 5, 6):
        cb.on_epoch_end(epoch(n, task=2))
    cb.close()
    cb.check()
    assert rows(session_factory, job_id) == ([1, 2, 3, 4, 5, 6], [1])
    with session_factory() as s:
        job = s.get(Experiment, job_id)
        assert (job.num_tasks, job.total_epochs, job.current_task, job.current_epoch) == (2, 6, 2, 6)
    assert [what for what, _ in follower.heard] == ["run", "epoch 1", "epoch 2", "epoch 3", "task 1",
                                                    "epoch 4", "epoch 5", "epoch 6"]  # fmt: skip
    assert {thread for _, thread in follower.heard} != {threading.get_ident()}  # not the trainer's
    assert cb.where() == "after task 2, epoch 6"


def test_a_write_that_fails_for_good_is_raised_on_the_training_thread(
    session_factory, make_user, make_job, monkeypatch
):
    job_id = running_job(session_factory, make_user, make_job)
    cb = callback_for(session_factory, job_id, db_retry_s=0.0)

    def away(*_args, **_kwargs):
        raise OperationalError("UPDATE", {}, Exception("server closed the connection"))

    monkeypatch.setattr(jobs, "record_epoch", away)
    cb.on_epoch_end(epoch(1))
    cb.close()  # never raises: the error waits for check()
    with pytest.raises(OperationalError):
        cb.check()
    cb.check()  # raised once
    assert rows(session_factory, job_id) == ([], [])


def test_the_training_thread_waits_once_max_pending_events_wait(
    session_factory, make_user, make_job, monkeypatch
):
    job_id = running_job(session_factory, make_user, make_job)
    cb = callback_for(session_factory, job_id)
    gate = threading.Event()
    record = jobs.record_epoch

    entered = threading.Event()

    def slow(*args, **kwargs):
        entered.set()
        gate.wait(30)
        return record(*args, **kwargs)

    monkeypatch.setattr(jobs, "record_epoch", slow)
    handed: list[int] = []
    total = MAX_PENDING + 10

    cb.on_epoch_end(epoch(1))
    assert entered.wait(10)  # the writer holds epoch 1 at the gate

    def trainer() -> None:
        for n in range(2, total + 1):
            cb.on_epoch_end(epoch(n))
            handed.append(n)

    thread = threading.Thread(target=trainer)
    thread.start()
    deadline = time.monotonic() + 10
    while len(handed) < MAX_PENDING and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)
    # MAX_PENDING events wait behind the one at the gate: the trainer waits too
    assert len(handed) == MAX_PENDING and thread.is_alive()
    gate.set()
    thread.join(30)
    assert len(handed) == total - 1
    cb.close()
    cb.check()
    assert rows(session_factory, job_id)[0] == list(range(1, total + 1))


def test_a_lost_claim_stops_the_run_and_nothing_more_is_written(
    session_factory, make_user, make_job
):
    job_id = running_job(session_factory, make_user, make_job)
    cb = callback_for(session_factory, job_id)
    cb.on_epoch_end(epoch(1))
    cb.flush()
    with unit_of_work(session_factory) as s:  # taken over by another worker
        jobs.set_where(s, Experiment.id == job_id, worker="w2")
    cb.on_epoch_end(epoch(2))
    cb.flush()
    assert cb.stop_reason is StopReason.lost and cb.should_stop()
    cb.on_epoch_end(epoch(3))
    cb.close()
    cb.check()
    assert rows(session_factory, job_id) == ([1], [])
