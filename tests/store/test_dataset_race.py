"""Deleting a dataset and submitting a job naming it at the same moment never both
succeed. Two real sessions on two threads, each in its own transaction, through the very
functions the routes call (`api.submission.create_experiment`, `api.services.datasets.remove`):

- the delete holds the dataset's row, the submission waits for it, then finds no dataset
  (422 on `dataset`) and queues nothing;
- the submission holds it (its experiment inserted, not yet committed), the delete waits,
  then sees the queued job (409 naming it) and the dataset stays.

On PostgreSQL the waiter is seen waiting on the row lock (`pg_stat_activity`) before the
holder commits, so each test runs exactly the interleaving that let both succeed before
(without the lock the waiter would not wait and the test fails). On SQLite the holder has
the one write lock from `BEGIN IMMEDIATE`, so the waiter cannot start before it commits.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

import pytest
from sqlalchemy import func, select, text

from api.errors import SpecProblems
from api.services import datasets as service
from api.submission import create_experiment
from common.settings import Settings
from continual_core.spec import ExperimentSpec
from store import datasets as store_datasets
from store import users
from store.db import unit_of_work
from store.models import Experiment, User
from store.records import Dataset

SPEC = {"dataset": "user:x", "dataset_update": "switch", "splits": 2, "epochs": 2}
SHA = "ab" * 32


@pytest.fixture
def world(session_factory, migrated_url, tmp_path):
    """(settings, the owner's id) with the dataset `x` (8×8, 4 classes) committed."""
    settings = Settings(_env_file=None, database_url=migrated_url, data_dir=tmp_path)
    with unit_of_work(session_factory) as s:
        owner = users.create_user(s, "ann", is_admin=True)
        store_datasets.create_dataset(
            s, owner, name="x", checksum=SHA, size_bytes=10, storage_key=store_datasets.storage_key(SHA),
            input_shape=[8, 8], num_classes=4, train_examples=40, test_examples=12,
        )  # fmt: skip
        return settings, owner.id


def backend_pid(session) -> int | None:
    if session.get_bind().dialect.name != "postgresql":
        return None
    return session.scalar(text("SELECT pg_backend_pid()"))


def wait_until_blocked(session_factory, pid: int | None, job: Future) -> None:
    """Return once the session with backend `pid` waits on a lock (PostgreSQL); fails if
    its job ended instead (it did not wait: the race is open). No-op on SQLite."""
    if pid is None:
        return
    deadline = time.monotonic() + 60
    with session_factory() as s:
        while time.monotonic() < deadline:
            assert not job.done(), f"it did not wait for the lock: {job.result()!r}"
            waiting = s.scalar(text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :p"),
                               {"p": pid})  # fmt: skip
            s.rollback()  # a fresh snapshot of pg_stat_activity each time
            if waiting == "Lock":
                return
            time.sleep(0.02)
    pytest.fail("the waiting session never blocked on the dataset's row lock")


def in_thread(session_factory, call) -> tuple[Future, threading.Event, list]:
    """Run `call(session)` in a new session on another thread, committing after; returns
    (its future, an event set when its session knows its backend pid, that pid's list)."""
    ready, pid = threading.Event(), []

    def run():
        with unit_of_work(session_factory) as s:
            pid.append(backend_pid(s))
            s.rollback()  # the pid query must not hold SQLite's write lock
            ready.set()
            return call(s)

    pool = ThreadPoolExecutor(1)
    future = pool.submit(run)
    pool.shutdown(wait=False)
    return future, ready, pid


def count(session_factory, model) -> int:
    with session_factory() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_a_submission_waits_for_a_delete_and_then_finds_no_dataset(world, session_factory):
    settings, owner_id = world
    with session_factory() as deleter:
        owner = deleter.get(User, owner_id)
        row = store_datasets.get_dataset(deleter, "x", for_delete=True)  # the lock is ours

        def submit(s):
            return create_experiment(s, settings, s.get(User, owner_id),
                                     ExperimentSpec.model_validate(SPEC))  # fmt: skip

        job, ready, pid = in_thread(session_factory, submit)
        assert ready.wait(30)
        wait_until_blocked(session_factory, pid[0], job)
        assert row.name == "x" and owner.is_admin
        service.remove(deleter, settings, owner, "x")
        deleter.commit()

    with pytest.raises(SpecProblems) as refused:
        job.result(timeout=60)
    assert refused.value.problems[0][0] == "dataset"
    assert "no uploaded dataset named 'x'" in refused.value.problems[0][1]
    assert count(session_factory, Experiment) == 0 and count(session_factory, Dataset) == 0


def test_a_delete_waits_for_a_submission_and_then_sees_its_job(world, session_factory):
    settings, owner_id = world
    with session_factory() as submitter:
        exp = create_experiment(submitter, settings, submitter.get(User, owner_id),
                                ExperimentSpec.model_validate(SPEC))  # fmt: skip
        assert exp.spec["user_dataset"]["checksum"] == SHA

        def delete(s):
            return service.remove(s, settings, s.get(User, owner_id), "x")

        job, ready, pid = in_thread(session_factory, delete)
        assert ready.wait(30)
        wait_until_blocked(session_factory, pid[0], job)
        submitter.commit()
        exp_id = exp.id

    with pytest.raises(store_datasets.DatasetInUse) as refused:
        job.result(timeout=60)
    assert refused.value.experiment_ids == [exp_id]
    assert count(session_factory, Experiment) == 1 and count(session_factory, Dataset) == 1
