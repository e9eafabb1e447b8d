"""Webhooks from a real job: `run_job` trains a tiny spec (or fails one), its end queues
`experiment.finished` in the finishing transaction, and the dispatcher thread every
`ewc worker` runs (`worker.webhooks.WebhookDispatcher`) delivers it, signed, to a real
receiving HTTP server."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from common.settings import Settings
from store import claims, webhooks
from store.db import unit_of_work
from store.models import JobStatus
from tests.harness.webhook_receiver import Receiver, verify
from worker.runner import run_job
from worker.webhooks import WebhookDispatcher, dispatch_due

SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # as test_runner

TINY = {"dataset": "digits", "model": "mlp", "dataset_update": "permute", "splits": 2,
        "epochs": 2, "seed": 0}  # fmt: skip


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        heartbeat_s=0.05,
        dataset_cache=tmp_path / "datasets",
        tensorboard=False,
        public_url="http://ewc.test",
        webhook_backoff_s=0.01,
    )


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


def _run(session_factory, settings, make_job, owner: int, spec: dict):
    job_id = make_job(owner, spec=spec, name="tiny")
    with unit_of_work(session_factory) as s:
        job = claims.claim_next_job(s, ["cpu"], "w1", 30, 3)
    assert job is not None and job.id == job_id
    outcome = run_job(job, worker="w1", settings=settings, sessions=session_factory, device="CPU")
    return job_id, outcome


@SQLITE
def test_a_real_job_end_is_delivered_by_the_dispatcher_thread(
    session_factory, settings, make_user, make_job, receiver
):
    owner = make_user("alice")
    with unit_of_work(session_factory) as s:
        hook = webhooks.create_webhook(s, owner, receiver.url, ["experiment.finished"])
        secret = hook.secret
    receiver.statuses[:] = [500]  # the first call fails: retried
    dispatcher = WebhookDispatcher(session_factory, settings, poll_s=0.05)
    dispatcher.start()
    try:
        ok_id, ok = _run(session_factory, settings, make_job, owner, TINY)
        bad_id, bad = _run(session_factory, settings, make_job, owner, {**TINY, "model": "resnet"})
        calls = receiver.wait_for(3)
    finally:
        dispatcher.stop()
    assert (ok.status, bad.status) == (JobStatus.succeeded, JobStatus.failed), (ok, bad)
    assert all(verify(secret, c) for c in calls)
    by_id = {c.json["experiment"]["id"]: c.json["experiment"] for c in calls}
    done, failed = by_id[ok_id], by_id[bad_id]
    assert done["status"] == "succeeded" and done["name"] == "tiny" and done["error"] is None
    assert 0 < done["summary"]["average_accuracy"] <= 1
    assert done["url"] == f"http://ewc.test/v1/experiments/{ok_id}" and done["finished_at"]
    assert failed["status"] == "failed" and failed["error"].startswith("invalid spec: model:")
    with unit_of_work(session_factory) as s:
        log = webhooks.list_deliveries(s, owner)
        assert sorted(d.status for d in log) == ["delivered", "delivered"]
        assert sorted(d.attempts for d in log) == [1, 2]


def test_dispatchers_side_by_side_send_each_delivery_once(
    session_factory, database_url, make_user, receiver
):
    owner = make_user("alice")
    with unit_of_work(session_factory) as s:
        hook = webhooks.create_webhook(s, owner, receiver.url)
        for _ in range(12):
            webhooks.queue_ping(s, hook)
    settings = Settings(database_url=database_url)

    def dispatch() -> None:
        for _ in range(50):
            dispatch_due(session_factory, settings)

    threads = [threading.Thread(target=dispatch) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [c.headers["x-ewc-delivery"] for c in receiver.wait_for(12)]
    assert len(ids) == len(set(ids)) == 12
    with unit_of_work(session_factory) as s:
        log = webhooks.list_deliveries(s, owner)
    assert {(d.status, d.attempts) for d in log} == {("delivered", 1)}


def test_the_dispatcher_imports_no_tensorflow():
    code = "import sys, worker.webhooks; print([m for m in ('tensorflow', 'keras') if m in sys.modules])"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
