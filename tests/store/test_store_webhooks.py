"""`store.webhooks`: events queued in the transaction that ends a job (the outbox), on
SQLite and PostgreSQL, and the dispatcher's claims and outcomes."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from common.schemas_webhooks import WebhookEvent
from store import claims, jobs, sweeps, webhook_dispatch, webhooks
from store.db import unit_of_work
from store.experiments import request_cancel
from store.models import Experiment, JobStatus, utcnow
from store.records import WebhookDelivery


def _job(s, owner: int, **extra) -> int:
    exp = Experiment(owner_id=owner, **{"spec": {"dataset": "digits"}, "queue": "cpu", **extra})
    s.add(exp)
    s.flush()
    return exp.id


def _deliveries(factory) -> list[WebhookDelivery]:
    with unit_of_work(factory) as s:
        return list(s.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))


def test_the_events_are_the_ones_the_schema_allows():
    assert webhooks.EVENTS == WebhookEvent.__args__


def test_a_cancelled_job_queues_its_event_for_its_owners_hooks_only(session_factory, make_user):
    alice, bob = make_user("alice"), make_user("bob")
    with unit_of_work(session_factory) as s:
        hook = webhooks.create_webhook(s, alice, "http://127.0.0.1:9/a")
        webhooks.create_webhook(s, alice, "http://127.0.0.1:9/b", ["sweep.finished"])
        webhooks.create_webhook(s, bob, "http://127.0.0.1:9/c")
        hook_id, secret = hook.id, hook.secret
        job = _job(s, alice, name="mine")
        other = _job(s, bob)
    assert secret.startswith("whsec_") and len(secret) > 40
    with unit_of_work(session_factory) as s:
        request_cancel(s, job)
    [d] = _deliveries(session_factory)
    assert (d.webhook_id, d.event, d.status, d.attempts) == (
        hook_id,
        "experiment.finished",
        "pending",
        0,
    )
    body = d.payload["experiment"]
    assert (body["id"], body["name"], body["status"]) == (job, "mine", "cancelled")
    assert body["url"] == f"/v1/experiments/{job}" and body["finished_at"]
    with unit_of_work(session_factory) as s:  # a running job's cancel ends it later: nothing yet
        s.execute(update(Experiment).where(Experiment.id == other).values(status=JobStatus.running))
    with unit_of_work(session_factory) as s:
        request_cancel(s, other)
    assert len(_deliveries(session_factory)) == 1


def test_a_job_given_up_by_the_claim_queues_a_failed_event(session_factory, make_user):
    alice = make_user("alice")
    with unit_of_work(session_factory) as s:
        webhooks.create_webhook(s, alice, "https://example.org/hook")
        _job(s, alice, status=JobStatus.running, attempts=3, worker="dead",
                   heartbeat_at=utcnow() - timedelta(hours=1))  # fmt: skip
    with unit_of_work(session_factory) as s:
        assert claims.claim_next_job(s, ["cpu"], "w2", 30, 3) is None
    [d] = _deliveries(session_factory)
    assert d.payload["experiment"]["status"] == "failed"
    assert "gave up after 3 attempts" in d.payload["experiment"]["error"]


def _finish(factory, job: int, status: JobStatus, summary=None) -> None:
    """What `worker.outcome.finish` writes: the status and the events, in one transaction."""
    with unit_of_work(factory) as s:
        s.execute(update(Experiment).where(Experiment.id == job)
                  .values(status=JobStatus.running, worker="w1"))  # fmt: skip
    with unit_of_work(factory) as s:
        assert jobs.finish_job(s, job, "w1", status, summary=summary)
        webhooks.enqueue_for_experiment(s, job)


def test_sweep_finished_fires_once_when_its_last_point_ends(session_factory, make_user):
    alice = make_user("alice")
    grid = {"ewc.lambda": [1, 10], "seed": [0, 1]}
    with unit_of_work(session_factory) as s:
        webhooks.create_webhook(s, alice, "http://127.0.0.1:9/h", ["sweep.finished"])
        sweep = sweeps.create_sweep(s, owner_id=alice, base_spec={}, grid=grid, name="lambdas")
        points = [(1, 0), (1, 1), (10, 0), (10, 1), (10, 2)]
        ids = [_job(s, alice, sweep_id=sweep.id, spec={"ewc": {"lambda": v}, "seed": k})
               for v, k in points]  # fmt: skip
    for job, (lam, _seed) in zip(ids[:4], points, strict=False):
        summary = {"average_accuracy": 0.8 if lam == 1 else 0.9, "forgetting": 0.1}
        _finish(session_factory, job, JobStatus.succeeded, summary)
    assert _deliveries(session_factory) == []  # one run still queued
    with unit_of_work(session_factory) as s:
        request_cancel(s, ids[4])
    [d] = _deliveries(session_factory)
    body = d.payload["sweep"]
    assert d.event == "sweep.finished" and body["id"] == sweep.id and body["name"] == "lambdas"
    assert body["experiments"] == 5 and body["url"] == f"/v1/sweeps/{sweep.id}"
    assert body["counts"]["succeeded"] == 4 and body["counts"]["cancelled"] == 1
    assert body["best"]["params"] == {"ewc.lambda": 10}
    assert body["best"]["experiment_ids"] == ids[2:]
    assert body["best"]["metrics"]["average_accuracy"]["mean"] == 0.9


def test_claims_lease_and_outcomes(session_factory, make_user):
    alice = make_user("alice")
    with unit_of_work(session_factory) as s:
        hook = webhooks.create_webhook(s, alice, "http://127.0.0.1:9/h")
        webhooks.queue_ping(s, hook)
    with unit_of_work(session_factory) as s:
        [due] = webhook_dispatch.claim_due(s, lease_s=60)
    assert (due.event, due.attempt, due.url, due.secret) == ("ping", 1, hook.url, hook.secret)
    with unit_of_work(session_factory) as s:
        assert webhook_dispatch.claim_due(s, lease_s=60) == []  # leased: nobody else takes it
    kwargs = {"max_attempts": 2, "backoff_s": 0.0}
    with unit_of_work(session_factory) as s:
        status = webhook_dispatch.record_attempt(s, due, delivered=False, status_code=500,
                                         error="HTTP 500", **kwargs)  # fmt: skip
    assert status == "pending"
    with unit_of_work(session_factory) as s:
        [again] = webhook_dispatch.claim_due(s, lease_s=60)
    assert again.attempt == 2
    with unit_of_work(session_factory) as s:  # the first attempt's late answer changes nothing
        assert webhook_dispatch.record_attempt(s, due, delivered=True, status_code=200, error=None,
                                       **kwargs) is None  # fmt: skip
        assert webhook_dispatch.record_attempt(s, again, delivered=False, status_code=None,
                                       error="ConnectError", **kwargs) == "failed"  # fmt: skip
    [d] = _deliveries(session_factory)
    assert (d.status, d.attempts, d.last_status_code, d.last_error) == (
        "failed",
        2,
        None,
        "ConnectError",
    )
    assert d.next_attempt_at is None
    with unit_of_work(session_factory) as s:
        assert webhooks.list_deliveries(s, alice)[0].id == d.id
        webhooks.delete_webhook(s, webhooks.get_webhook(s, hook.id, alice))
    assert _deliveries(session_factory) == []
