"""Re-sending wake-ups against a real broker: late jobs get a wake-up, once per interval,
and never more than the queue lacks."""

from __future__ import annotations

import time
import uuid

import pytest

from common.broker import make_celery, send_wakeup
from common.settings import Settings
from store.models import JobStatus, utcnow
from worker.wakeups import pending_wakeups, resend_wakeups

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def broker(redis_url):
    """A Celery app on the test broker and a queue name no other test uses."""
    app = make_celery(Settings(broker_url=redis_url))
    queue = f"resend-{uuid.uuid4().hex[:8]}"
    yield app, queue
    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge(queue)


def test_late_jobs_get_one_wakeup_each_and_a_full_queue_gets_none(
    broker, session_factory, make_user, make_job
):
    app, queue = broker
    settings = Settings(wakeup_resend_s=15, heartbeat_timeout_s=30)
    owner = make_user("alice")
    make_job(owner, queue=queue, age_s=60)
    make_job(owner, queue=queue, age_s=40)
    make_job(owner, queue=queue)  # just submitted: not late yet
    make_job(
        owner, queue=queue, status=JobStatus.running, attempts=1, worker="x", heartbeat_at=utcnow()
    )  # alive
    assert pending_wakeups(app, queue) == 0

    assert resend_wakeups(app, session_factory, settings, [queue]) == 2
    assert pending_wakeups(app, queue) == 2
    assert resend_wakeups(app, session_factory, settings, [queue]) == 0  # marked: not again

    make_job(owner, queue=queue, age_s=50)  # one more late job, two wake-ups still waiting
    assert resend_wakeups(app, session_factory, settings, [queue]) == 0
    assert pending_wakeups(app, queue) == 2


def test_a_lost_wakeup_is_resent_after_the_interval(broker, session_factory, make_user, make_job):
    app, queue = broker
    settings = Settings(wakeup_resend_s=0.01, heartbeat_timeout_s=30)
    make_job(make_user("alice"), queue=queue, age_s=60)
    assert resend_wakeups(app, session_factory, settings, [queue]) == 1
    with app.connection_for_write() as conn:  # the broker loses it (flushed, restarted...)
        conn.default_channel.queue_purge(queue)
    assert pending_wakeups(app, queue) == 0
    time.sleep(0.05)  # past the 0.01 s interval for sure (a fast machine gets here sooner)
    assert resend_wakeups(app, session_factory, settings, [queue]) == 1
    assert send_wakeup(app, queue) and pending_wakeups(app, queue) == 2


def test_the_wakeup_resender_applies_the_checkpoint_retention(
    broker, session_factory, make_user, make_job, tmp_path
):
    from datetime import timedelta

    from worker.wakeups import WakeupResender

    app, queue = broker
    settings = Settings(artifacts_dir=tmp_path, artifact_retention_days=7, wakeup_resend_s=60)
    owner = make_user("alice")
    old = make_job(owner, queue=queue, status=JobStatus.succeeded,
                   finished_at=utcnow() - timedelta(days=8))
    new = make_job(owner, queue=queue, status=JobStatus.succeeded, finished_at=utcnow())
    for exp_id in (old, new):
        for name in ("task-1", "task-2"):
            (tmp_path / "experiments" / str(exp_id) / name).mkdir(parents=True)
        (tmp_path / "experiments" / str(exp_id) / "model.keras").write_bytes(b"model")
    resender = WakeupResender(app, session_factory, settings, [queue])
    resender.start()  # re-sends and prunes at once, then sleeps
    try:
        deadline = time.monotonic() + 60  # generous: the thread may start late
        while (tmp_path / "experiments" / str(old) / "task-1").exists():
            if time.monotonic() > deadline:
                break
            resender.done.wait(0.05)
    finally:
        resender.stop()
    assert sorted(p.name for p in (tmp_path / "experiments" / str(old)).iterdir()) == ["model.keras"]
    assert len(list((tmp_path / "experiments" / str(new)).iterdir())) == 3  # recent: kept
