"""`store.claims` + `store.jobs`: atomic claims, fair ordering, take-over of dead workers, idempotent metrics.

Every test runs on SQLite and on a real PostgreSQL database (see `database_url`).
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from store import claims, jobs
from store.db import unit_of_work
from store.models import EpochMetric, Experiment, JobStatus, TaskResult, utcnow

TIMEOUT = 30.0


def claim(factory, worker="w1", queues=("cpu",), max_attempts=3):
    with unit_of_work(factory) as s:
        job = claims.claim_next_job(s, list(queues), worker, TIMEOUT, max_attempts)
        return None if job is None else job.id


def get(factory, job_id) -> Experiment:
    with factory() as s:
        return s.get(Experiment, job_id)


def test_racing_workers_claim_one_job_exactly_once(session_factory, make_user, make_job):
    owner = make_user("alice")
    for _ in range(3):  # a few rounds: a race that is won twice must show up
        job_id = make_job(owner)
        barrier = threading.Barrier(4)
        won: list[int | None] = [None] * 4

        def racer(i: int, barrier: threading.Barrier, won: list) -> None:
            barrier.wait()
            won[i] = claim(session_factory, worker=f"w{i}")

        threads = [threading.Thread(target=racer, args=(i, barrier, won)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(w for w in won if w is not None) == [job_id]
        job = get(session_factory, job_id)
        assert job.status == JobStatus.running and job.attempts == 1
        assert job.worker == f"w{won.index(job_id)}"
        with unit_of_work(session_factory) as s:
            jobs.finish_job(s, job_id, job.worker, JobStatus.succeeded)


def test_a_second_delivery_never_reruns_a_running_or_finished_job(
    session_factory, make_user, make_job
):
    job_id = make_job(make_user("alice"))
    assert claim(session_factory, "w1") == job_id
    assert claim(session_factory, "w2") is None  # running, heartbeat fresh
    with unit_of_work(session_factory) as s:
        assert jobs.finish_job(s, job_id, "w1", JobStatus.succeeded, summary={"bwt": 0.0})
    assert claim(session_factory, "w2") is None  # finished
    job = get(session_factory, job_id)
    assert (job.status, job.attempts, job.worker) == (JobStatus.succeeded, 1, "w1")
    assert job.started_at is not None and job.finished_at is not None


def test_fair_share_a_lone_job_of_a_second_user_goes_before_the_first_users_backlog(
    session_factory, make_user, make_job
):
    a, b = make_user("alice"), make_user("bob")
    a_jobs = [make_job(a, age_s=100 - i) for i in range(5)]  # older than bob's
    b_job = make_job(b, age_s=10)
    assert claim(session_factory, "w1") == a_jobs[0]  # nobody runs anything: oldest first
    assert claim(session_factory, "w2") == b_job  # alice runs 1, bob 0
    assert claim(session_factory, "w3") == a_jobs[1]  # both run 1: oldest first


def test_fair_share_with_one_worker_is_round_robin_between_users(
    session_factory, make_user, make_job
):
    """One worker, alice's backlog of 30 older jobs, bob's and carol's single jobs: the
    worker never runs two of alice's in a row while another user waits."""
    a, b, c = make_user("alice"), make_user("bob"), make_user("carol")
    a_jobs = [make_job(a, age_s=100 - i) for i in range(30)]
    b_job, c_job = make_job(b, age_s=10), make_job(c, age_s=5)
    order = []
    for _ in range(5):
        job_id = claim(session_factory, "only")
        order.append(job_id)
        with unit_of_work(session_factory) as s:
            assert jobs.finish_job(s, job_id, "only", JobStatus.succeeded)
    assert order == [a_jobs[0], b_job, c_job, a_jobs[1], a_jobs[2]]


def test_priority_goes_first_then_age(session_factory, make_user, make_job):
    owner = make_user("alice")
    old = make_job(owner, age_s=50)
    urgent = make_job(owner, priority=5, age_s=1)
    low = make_job(owner, priority=-1, age_s=100)
    assert [claim(session_factory, f"w{i}") for i in range(4)] == [urgent, old, low, None]


def test_workers_only_claim_their_queues_and_skip_cancelled_jobs(
    session_factory, make_user, make_job
):
    owner = make_user("alice")
    gpu = make_job(owner, queue="gpu", age_s=10)
    make_job(owner, queue="cpu", cancel_requested=True, age_s=9)
    cpu = make_job(owner, queue="cpu")
    assert claim(session_factory, "cpu-1", queues=["cpu"]) == cpu
    assert claim(session_factory, "cpu-2", queues=["cpu"]) is None
    assert claim(session_factory, "both", queues=["cpu", "gpu"]) == gpu


def test_a_job_whose_worker_died_is_taken_over_and_the_dead_worker_is_fenced_off(
    session_factory, make_user, make_job
):
    job_id = make_job(make_user("alice"))
    assert claim(session_factory, "dead") == job_id
    assert claim(session_factory, "w2") is None
    with unit_of_work(session_factory) as s:  # the worker stops heartbeating...
        s.get(Experiment, job_id).heartbeat_at = utcnow() - timedelta(seconds=TIMEOUT + 5)
    assert claim(session_factory, "w2") == job_id  # ...and another one resumes the job
    job = get(session_factory, job_id)
    assert (job.status, job.worker, job.attempts) == (JobStatus.running, "w2", 2)
    with unit_of_work(session_factory) as s:
        # The old worker comes back: told to stop, and none of its writes land.
        assert jobs.heartbeat(s, job_id, "dead") is True
        assert not jobs.record_epoch(
            s,
            job_id,
            "dead",
            task=1,
            epoch=1,
            task_epoch=1,
            loss=1.0,
            val_accuracy=[0.5],
            train_s=1,
            eval_s=1,
        )
        assert not jobs.finish_job(s, job_id, "dead", JobStatus.failed, error="x")
        assert jobs.heartbeat(s, job_id, "w2") is False
    assert get(session_factory, job_id).status == JobStatus.running


def test_a_job_that_killed_max_attempts_workers_is_failed_with_the_reason(
    session_factory, make_user, make_job
):
    owner = make_user("alice")
    stale = utcnow() - timedelta(seconds=TIMEOUT * 2)
    doomed = make_job(
        owner,
        status=JobStatus.running,
        attempts=3,
        worker="gpu-host:77",
        heartbeat_at=stale,
        age_s=100,
    )
    healthy = make_job(owner)
    assert claim(session_factory, "w", max_attempts=3) == healthy
    job = get(session_factory, doomed)
    assert job.status == JobStatus.failed and job.finished_at is not None
    assert "worker died 3 times" in job.error and "gpu-host:77" in job.error


def test_an_orphaned_job_with_a_cancel_request_is_cancelled_not_resumed(
    session_factory, make_user, make_job
):
    stale = utcnow() - timedelta(seconds=TIMEOUT * 2)
    job_id = make_job(
        make_user("alice"),
        status=JobStatus.running,
        attempts=1,
        worker="x",
        heartbeat_at=stale,
        cancel_requested=True,
    )
    assert claim(session_factory, "w") is None
    assert get(session_factory, job_id).status == JobStatus.cancelled


def test_heartbeat_reports_a_cancel_request(session_factory, make_user, make_job):
    job_id = make_job(make_user("alice"))
    claim(session_factory, "w1")
    with unit_of_work(session_factory) as s:
        assert jobs.heartbeat(s, job_id, "w1") is False
        s.get(Experiment, job_id).cancel_requested = True
    with unit_of_work(session_factory) as s:
        assert jobs.heartbeat(s, job_id, "w1") is True


def test_metric_rows_are_upserts_a_rerun_never_duplicates(session_factory, make_user, make_job):
    job_id = make_job(make_user("alice"))
    claim(session_factory, "w1")
    for attempt in range(2):  # the same task and epochs, written twice (a resumed run)
        with unit_of_work(session_factory) as s:
            assert jobs.record_run_start(
                s, job_id, "w1", num_tasks=2, total_epochs=2, first_task=1, device="CPU"
            )
            for epoch in (1, 2):
                assert jobs.record_epoch(
                    s,
                    job_id,
                    "w1",
                    task=epoch,
                    epoch=epoch,
                    task_epoch=1,
                    loss=1.0 + attempt,
                    val_accuracy=[0.5, 0.25],
                    train_s=0.1,
                    eval_s=0.1,
                )
            assert jobs.record_task(
                s, job_id, "w1", task=1, test_accuracy=[0.9 - attempt / 10, 0.1]
            )
    with session_factory() as s:
        epochs = s.scalars(select(EpochMetric).order_by(EpochMetric.epoch)).all()
        assert [(e.epoch, e.loss) for e in epochs] == [(1, 2.0), (2, 2.0)]
        assert s.scalar(select(func.count()).select_from(TaskResult)) == 1
        assert s.scalars(select(TaskResult.test_accuracy)).one() == [0.8, 0.1]
        job = s.get(Experiment, job_id)
        assert (job.current_task, job.current_epoch, job.num_tasks, job.device) == (1, 2, 2, "CPU")


def test_finish_job_rejects_a_non_final_status(session_factory, make_user, make_job):
    job_id = make_job(make_user("alice"))
    claim(session_factory, "w1")
    with unit_of_work(session_factory) as s, pytest.raises(ValueError, match="succeeded"):
        jobs.finish_job(s, job_id, "w1", JobStatus.queued)


def test_each_late_job_needs_its_wakeup_resent_once_per_interval(session_factory, make_user, make_job):
    owner = make_user("alice")
    late = make_job(owner, age_s=60)
    make_job(owner)  # just submitted: its own wake-up is on its way
    stale = utcnow() - timedelta(seconds=TIMEOUT * 2)
    orphan = make_job(
        owner, status=JobStatus.running, attempts=1, worker="x", heartbeat_at=stale, queue="gpu"
    )
    make_job(owner, status=JobStatus.succeeded, age_s=60)
    with unit_of_work(session_factory) as s:
        found = claims.jobs_needing_wakeup(s, 15, heartbeat_timeout_s=TIMEOUT)
    assert {(w.experiment_id, w.queue, w.reason) for w in found} == {
        (late, "cpu", "waiting"),
        (orphan, "gpu", "heartbeat expired"),
    }
    with unit_of_work(session_factory) as s:
        assert claims.jobs_needing_wakeup(s, 15, heartbeat_timeout_s=TIMEOUT) == []
