"""A wake-up that arrives while its job's row is locked still runs that job.

The API commits a new job, sends its wake-up, then records `wakeup_sent_at` in a second
short transaction. A fast worker claims in between, and on PostgreSQL `SKIP LOCKED` passes
over the locked row: the claim finds nothing and, before the fix, the job waited for its
wake-up to be re-sent (15–30 s; bench/service_speed.py saw 6 of 11 jobs start that late).
"""

from __future__ import annotations

import threading

from sqlalchemy import update

from common.settings import Settings
from store.db import unit_of_work
from store.models import Experiment, JobStatus, utcnow
from worker import celery_app
from worker.celery_app import WorkerRuntime

#: Not a valid spec: run_job fails it at once, without TensorFlow. Only the claim matters.
BAD_SPEC = {"dataset": "no-such-dataset"}


def runtime(session_factory, tmp_path) -> WorkerRuntime:
    return WorkerRuntime(
        settings=Settings(data_dir=tmp_path),
        queues=["cpu"],
        engine=session_factory.kw["bind"],
        sessions=session_factory,
    )


def test_a_wakeup_claims_its_job_once_a_brief_row_lock_is_released(
    session_factory, make_user, make_job, tmp_path, monkeypatch
):
    # The lock goes after 0.3 s; the retry window (2 s in service) is widened so that a
    # loaded machine stalling this test for a second or two cannot fail it.
    monkeypatch.setattr(celery_app, "HINT_WAIT_S", 60.0)
    job_id = make_job(make_user("alice"), spec=BAD_SPEC)
    locked, release = threading.Event(), threading.Event()

    def api_recording_the_wakeup() -> None:
        with unit_of_work(session_factory) as s:
            s.execute(
                update(Experiment).where(Experiment.id == job_id).values(wakeup_sent_at=utcnow())
            )
            locked.set()
            release.wait(10)

    holder = threading.Thread(target=api_recording_the_wakeup)
    holder.start()
    assert locked.wait(10)
    threading.Timer(0.3, release.set).start()
    try:
        done = runtime(session_factory, tmp_path).run_until_idle(hint=job_id)
    finally:
        release.set()
        holder.join(10)
    assert [experiment_id for experiment_id, _ in done] == [job_id]
    with session_factory() as s:
        job = s.get(Experiment, job_id)
        assert job.attempts == 1 and job.status == JobStatus.failed  # claimed, then refused


def test_a_wakeup_for_a_job_no_longer_waiting_ends_at_once(
    session_factory, make_user, make_job, tmp_path
):
    owner = make_user("alice")
    finished = make_job(owner, status=JobStatus.succeeded)
    other_queue = make_job(owner, queue="gpu", spec=BAD_SPEC)
    worker = runtime(session_factory, tmp_path)
    assert worker.run_until_idle(hint=finished) == []
    assert worker.run_until_idle(hint=other_queue) == []
    with session_factory() as s:
        assert s.get(Experiment, other_queue).status == JobStatus.queued
