"""Experiments in the store: submit, list with filters and cursors, cancel, the cap,
the metrics document (two queries), status counts and queue depths."""

from __future__ import annotations

import pytest
from sqlalchemy import event

from store import experiments as ex
from store import users
from store.db import unit_of_work
from store.errors import (
    ActiveJobCapReached,
    ExperimentFinished,
    ExperimentNotFound,
    InvalidCursor,
)
from store.models import EpochMetric, Experiment, JobStatus, TaskResult


def _submit(s, owner, **spec):
    return ex.create_experiment(s, owner, spec, num_tasks=spec.get("splits", 1), total_epochs=4)


@pytest.fixture
def ann_bob(session_factory):
    with unit_of_work(session_factory) as s:
        users.create_user(s, "ann")
        users.create_user(s, "bob")


def _user(s, name):
    return users.get_user(s, name)


def test_create_sets_queue_tags_and_progress_shape(session_factory, ann_bob) -> None:
    with unit_of_work(session_factory) as s:
        gpu = _submit(s, _user(s, "ann"), device="gpu", tags=["a", "b", "a"], name="n", priority=3)
        cpu = _submit(s, _user(s, "ann"), device="any")
        ids = gpu.id, cpu.id
    with unit_of_work(session_factory) as s:
        gpu, cpu = ex.get_experiment(s, ids[0]), ex.get_experiment(s, ids[1])
        assert (gpu.queue, gpu.tag_names, gpu.name, gpu.priority) == ("gpu", ["a", "b"], "n", 3)
        assert gpu.owner.name == "ann" and gpu.status is JobStatus.queued
        assert (cpu.queue, cpu.tag_names, cpu.total_epochs) == ("cpu", [], 4)
        with pytest.raises(ExperimentNotFound, match="experiment 999 does not exist"):
            ex.get_experiment(s, 999)


def test_list_filters_and_paginates_newest_first(session_factory, ann_bob) -> None:
    with unit_of_work(session_factory) as s:
        for i in range(7):
            _submit(s, _user(s, "ann" if i % 2 else "bob"), tags=["even"] if i % 2 == 0 else [])
        ex.request_cancel(s, 1)
    with unit_of_work(session_factory) as s:
        seen, cursor, pages = [], None, 0
        while True:
            page = ex.list_experiments(s, limit=3, cursor=cursor)
            seen += [e.id for e in page.items]
            pages += 1
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert seen == [7, 6, 5, 4, 3, 2, 1] and pages == 3
        assert [e.id for e in ex.list_experiments(s, tag="even").items] == [7, 5, 3, 1]
        assert [e.id for e in ex.list_experiments(s, owner="ann").items] == [6, 4, 2]
        assert ex.list_experiments(s, owner="nobody").items == []
        assert [e.id for e in ex.list_experiments(s, status=JobStatus.cancelled).items] == [1]
        both = ex.list_experiments(s, tag="even", owner="bob", limit=2)
        assert [e.id for e in both.items] == [7, 5]
        rest = ex.list_experiments(s, tag="even", owner="bob", cursor=both.next_cursor)
        assert [e.id for e in rest.items] == [3, 1] and rest.next_cursor is None
        for bad in ("nonsense", "ZTp4", "!!!", ex.encode_cursor(5)[:-1] + "*"):
            with pytest.raises(InvalidCursor):
                ex.list_experiments(s, cursor=bad)


def test_cancel_queued_running_and_finished(session_factory, ann_bob) -> None:
    with unit_of_work(session_factory) as s:
        queued, running, done = (_submit(s, _user(s, "ann")) for _ in range(3))
        running.status, done.status = JobStatus.running, JobStatus.succeeded
        ids = queued.id, running.id, done.id
    with unit_of_work(session_factory) as s:
        q = ex.request_cancel(s, ids[0])
        assert q.status is JobStatus.cancelled and q.finished_at is not None
        r = ex.request_cancel(s, ids[1])
        assert r.status is JobStatus.running and r.cancel_requested
        with pytest.raises(ExperimentFinished, match="already succeeded"):
            ex.request_cancel(s, ids[2])
        with pytest.raises(ExperimentFinished, match="already cancelled"):
            ex.request_cancel(s, ids[0])
        with pytest.raises(ExperimentNotFound):
            ex.request_cancel(s, 999)
    with unit_of_work(session_factory) as s:  # it was written, not just in memory
        assert s.get(Experiment, ids[0]).status is JobStatus.cancelled
        assert s.get(Experiment, ids[1]).cancel_requested


def test_active_job_cap(session_factory, ann_bob) -> None:
    with unit_of_work(session_factory) as s:
        ann = _user(s, "ann")
        for _ in range(2):
            ex.create_experiment(s, ann, {}, num_tasks=1, total_epochs=1, max_active=2)
        with pytest.raises(ActiveJobCapReached, match="the cap is 2 per user"):
            ex.create_experiment(s, ann, {}, num_tasks=1, total_epochs=1, max_active=2)
        # bob is not affected; a finished job frees a slot
        ex.create_experiment(s, _user(s, "bob"), {}, num_tasks=1, total_epochs=1, max_active=2)
        ex.request_cancel(s, 1)
        ex.create_experiment(s, ann, {}, num_tasks=1, total_epochs=1, max_active=2)
        assert ex.count_active_jobs(s, ann) == 2


def test_metrics_document_in_two_queries(session_factory, ann_bob) -> None:
    with unit_of_work(session_factory) as s:
        e = _submit(s, _user(s, "ann"), fisher="empirical", splits=2)
        e.summary = {"average_accuracy": 0.9, "bwt": -0.02, "forgetting": 0.02}
        e.versions = {"tensorflow": "2.21.0"}
        e.timings = {"total_s": 4.5}
        rows = [  # written out of order: the document orders them
            EpochMetric(experiment_id=e.id, task=2, epoch=2, task_epoch=1, loss=0.5,
                        val_accuracy=[0.8, 0.9], train_s=1.5, eval_s=0.25),
            EpochMetric(experiment_id=e.id, task=1, epoch=1, task_epoch=1, loss=1.0,
                        val_accuracy=[0.9, 0.1], train_s=1.0, eval_s=0.5),
            TaskResult(experiment_id=e.id, task=2, test_accuracy=[0.85, 0.95], fisher_s=0.3),
            TaskResult(experiment_id=e.id, task=1, test_accuracy=[0.92, 0.11], fisher_s=0.2),
        ]
        s.add_all(rows)
        experiment_id = e.id
    with unit_of_work(session_factory) as s:
        e = ex.get_experiment(s, experiment_id)
        statements = []
        listener = lambda *args: statements.append(args[2])
        engine = s.get_bind()
        event.listen(engine, "before_cursor_execute", listener)
        try:
            doc = ex.metrics_document(s, e)
        finally:
            event.remove(engine, "before_cursor_execute", listener)
    assert len(statements) == 2
    assert set(doc) == {"spec", "epochs", "accuracy_matrix", "summary", "timings", "fisher",
                        "versions"}
    assert doc["epochs"] == [
        {"task": 1, "epoch": 1, "task_epoch": 1, "loss": 1.0, "val_accuracy": [0.9, 0.1],
         "train_s": 1.0, "eval_s": 0.5},
        {"task": 2, "epoch": 2, "task_epoch": 1, "loss": 0.5, "val_accuracy": [0.8, 0.9],
         "train_s": 1.5, "eval_s": 0.25},
    ]
    assert doc["accuracy_matrix"] == [[0.92, 0.11], [0.85, 0.95]]
    assert doc["timings"] == {"train_epoch_s": [1.0, 1.5], "eval_s": [0.5, 0.25],
                              "fisher_s": [0.2, 0.3], "total_s": 4.5}
    assert doc["fisher"] == "empirical" and doc["versions"] == {"tensorflow": "2.21.0"}
    assert doc["summary"]["bwt"] == -0.02 and doc["spec"]["splits"] == 2


def test_status_counts_and_queue_depths(session_factory, ann_bob) -> None:
    with unit_of_work(session_factory) as s:
        ann = _user(s, "ann")
        for device, status in [("gpu", JobStatus.queued), ("gpu", JobStatus.running),
                               ("cpu", JobStatus.queued), ("any", JobStatus.queued),
                               ("cpu", JobStatus.failed)]:
            _submit(s, ann, device=device).status = status
    with unit_of_work(session_factory) as s:
        assert ex.status_counts(s) == {"queued": 3, "running": 1, "succeeded": 0, "failed": 1,
                                       "cancelled": 0}
        assert ex.queue_depths(s) == {"cpu": {"waiting": 2, "running": 0},
                                      "gpu": {"waiting": 1, "running": 1}}


def test_cap_holds_under_concurrent_submissions(session_factory, ann_bob) -> None:
    """Four submissions at once with room for two: exactly two get in (the owner's row
    is locked on PostgreSQL; SQLite serialises writers)."""
    import threading
    import time

    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def slow_count(conn, cursor, statement, *args) -> None:  # widen the race window
        if "count(" in statement.lower():
            time.sleep(0.2)

    engine = session_factory.kw["bind"]
    event.listen(engine, "after_cursor_execute", slow_count)

    def submit() -> None:
        barrier.wait()
        try:
            with unit_of_work(session_factory) as s:
                ex.create_experiment(s, _user(s, "ann"), {}, num_tasks=1, total_epochs=1,
                                     max_active=2)
            outcomes.append("created")
        except ActiveJobCapReached:
            outcomes.append("capped")

    threads = [threading.Thread(target=submit) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    event.remove(engine, "after_cursor_execute", slow_count)
    assert sorted(outcomes) == ["capped", "capped", "created", "created"]
    with unit_of_work(session_factory) as s:
        assert ex.count_active_jobs(s, _user(s, "ann")) == 2
