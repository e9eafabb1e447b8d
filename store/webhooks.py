"""Webhooks: a user's URLs, the events they get, and the outbox of deliveries.

An event is written as one `WebhookDelivery` row per matching webhook in the SAME
transaction as the change it reports (`enqueue_for_experiment`, called where an experiment
reaches a finished status: `store.jobs.finish_job`'s callers, `store.claims` and
`store.experiments.request_cancel`), so no event is lost when a process dies: the row is
there, `pending`, until a dispatcher (`worker.webhooks`) delivers it.

Dispatchers claim due rows with a lease and write each attempt's outcome (delivered,
retried after back-off, or failed after `max_attempts`): `store.webhook_dispatch`.

Links in a payload (`url`, `dashboard_url`) are stored as paths (`/v1/experiments/12`);
whoever shows or sends a payload makes them absolute (`common.schemas_webhooks.with_links`).

Functions here flush but never commit: the caller's unit of work does (see `store.db`).
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from store.errors import LimitReached, NotFound
from store.jobs import is_postgres
from store.models import Experiment, Sweep, User, summary_metric_values, utcnow
from store.records import Webhook, WebhookDelivery
from store.sweeps import point_statistics, status_counts
from store.vocabulary import FINISHED

EXPERIMENT_FINISHED = "experiment.finished"
SWEEP_FINISHED = "sweep.finished"
#: The events a webhook may ask for (all of them by default).
EVENTS: tuple[str, ...] = (EXPERIMENT_FINISHED, SWEEP_FINISHED)
#: The test event of `queue_ping`, sent whatever the webhook's events.
PING = "ping"
SECRET_PREFIX = "whsec_"
#: Characters of a secret shown after it was created (the prefix included).
SHOWN_SECRET_CHARS = 10
MAX_WEBHOOKS_PER_USER = 20
#: The statuses of a delivery.
PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


class WebhookNotFound(NotFound):
    def __init__(self, webhook_id: int):
        super().__init__(f"webhook {webhook_id} does not exist (or is not yours)")
        self.webhook_id = webhook_id


class TooManyWebhooks(LimitReached):
    def __init__(self, count: int):
        super().__init__(
            f"you already have {count} webhooks, the most one user may have; remove one "
            "first (`ewc webhooks remove ID`)"
        )


# Webhooks -----------------------------------------------------------------------------


def new_secret() -> str:
    """A fresh signing secret (shown once, when the webhook is created)."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def shown_secret(secret: str) -> str:
    """What a listing shows of a secret: its first characters, to recognise it."""
    return secret[:SHOWN_SECRET_CHARS] + "…"


def create_webhook(
    session: Session, owner_id: int, url: str, events: list[str] | None = None
) -> Webhook:
    """A new webhook of `owner_id` with a fresh secret (flushed, so it has an id);
    `TooManyWebhooks` beyond MAX_WEBHOOKS_PER_USER. `events` must be names of EVENTS."""
    count = session.execute(
        select(func.count(Webhook.id)).where(Webhook.owner_id == owner_id)
    ).scalar_one()
    if count >= MAX_WEBHOOKS_PER_USER:
        raise TooManyWebhooks(count)
    chosen = [e for e in EVENTS if e in (events or EVENTS)]
    webhook = Webhook(owner_id=owner_id, url=url, secret=new_secret(), events=chosen, active=True)
    session.add(webhook)
    session.flush()
    return webhook


def list_webhooks(session: Session, owner_id: int | None) -> list[Webhook]:
    """The webhooks of `owner_id` (None: everyone's), oldest first."""
    stmt = select(Webhook).order_by(Webhook.id)
    if owner_id is not None:
        stmt = stmt.where(Webhook.owner_id == owner_id)
    return list(session.scalars(stmt))


def owner_names(session: Session, webhooks: list[Webhook]) -> dict[int, str]:
    """{owner id: user name} of these webhooks."""
    ids = {w.owner_id for w in webhooks}
    if not ids:
        return {}
    rows = session.execute(select(User.id, User.name).where(User.id.in_(ids))).all()
    return {user_id: name for user_id, name in rows}


def get_webhook(session: Session, webhook_id: int, owner_id: int | None = None) -> Webhook:
    """The webhook; `WebhookNotFound` when there is none, or (with `owner_id`) when it is
    someone else's: a webhook's existence is private to its owner."""
    webhook = session.get(Webhook, webhook_id)
    if webhook is None or (owner_id is not None and webhook.owner_id != owner_id):
        raise WebhookNotFound(webhook_id)
    return webhook


def delete_webhook(session: Session, webhook: Webhook) -> None:
    """Remove the webhook and its delivery log (nothing pending is sent any more)."""
    session.execute(delete(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook.id))
    session.delete(webhook)
    session.flush()


# Deliveries ---------------------------------------------------------------------------


def list_deliveries(
    session: Session, owner_id: int, webhook_id: int | None = None, limit: int = 50
) -> list[WebhookDelivery]:
    """The newest deliveries of the owner's webhooks (or of one of them), newest first."""
    stmt = (
        select(WebhookDelivery)
        .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
        .where(Webhook.owner_id == owner_id)
        .order_by(WebhookDelivery.id.desc())
        .limit(limit)
    )
    if webhook_id is not None:
        stmt = stmt.where(WebhookDelivery.webhook_id == webhook_id)
    return list(session.scalars(stmt))


def _add(session: Session, webhook_id: int, event: str, payload: dict[str, Any]) -> WebhookDelivery:
    delivery = WebhookDelivery(
        webhook_id=webhook_id,
        event=event,
        payload=payload,
        status=PENDING,
        attempts=0,
        next_attempt_at=utcnow(),
    )
    session.add(delivery)
    return delivery


def queue_ping(session: Session, webhook: Webhook) -> WebhookDelivery:
    """Queue a `ping` delivery to the webhook (to test the receiver); flushed."""
    payload = {
        "event": PING,
        "webhook_id": webhook.id,
        "message": "a test delivery from EWC Server: your webhook is reachable",
        "sent_for": utcnow().isoformat(),
    }
    delivery = _add(session, webhook.id, PING, payload)
    session.flush()
    return delivery


def enqueue(session: Session, owner_id: int, event: str, payload: dict[str, Any]) -> int:
    """One pending delivery of `payload` per active webhook of `owner_id` that asked for
    `event`; returns how many. Part of the caller's transaction (the outbox)."""
    hooks = session.scalars(
        select(Webhook).where(Webhook.owner_id == owner_id, Webhook.active.is_(True))
    )
    count = 0
    for hook in hooks:
        if event in (hook.events or []):
            _add(session, hook.id, event, payload)
            count += 1
    if count:
        session.flush()
    return count


def _has_hooks(session: Session, owner_id: int) -> bool:
    found = session.execute(
        select(Webhook.id).where(Webhook.owner_id == owner_id, Webhook.active.is_(True)).limit(1)
    ).first()
    return found is not None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def experiment_payload(exp: Experiment) -> dict[str, Any]:
    """The body of `experiment.finished` (links as paths)."""
    error = (exp.error or "").strip()
    return {
        "event": EXPERIMENT_FINISHED,
        "experiment": {
            "id": exp.id,
            "name": exp.name,
            "status": exp.status.value,
            "sweep_id": exp.sweep_id,
            "summary": summary_metric_values(exp.summary) if exp.summary else None,
            "error": error.splitlines()[0][:500] if error else None,
            "attempts": exp.attempts,
            "created_at": _iso(exp.created_at),
            "finished_at": _iso(exp.finished_at),
            "url": f"/v1/experiments/{exp.id}",
            "dashboard_url": f"/ui/experiments/{exp.id}",
        },
    }


def sweep_payload(session: Session, sweep_id: int) -> dict[str, Any] | None:
    """The body of `sweep.finished` when every experiment of the sweep has finished, else
    None. Locks the sweep's row first (PostgreSQL), so of two of its experiments finishing
    at once the second one to take the lock sees the first finished: the event is neither
    lost nor sent twice."""
    locked = select(Sweep).where(Sweep.id == sweep_id)
    if is_postgres(session):
        locked = locked.with_for_update()
    sweep = session.execute(locked).scalar_one_or_none()
    if sweep is None:
        return None
    exps = list(
        session.scalars(
            select(Experiment)
            .where(Experiment.sweep_id == sweep_id)
            .order_by(Experiment.id)
            .execution_options(populate_existing=True)
        )
    )
    if not exps or any(e.status not in FINISHED for e in exps):
        return None
    best = next((p for p in point_statistics(sweep.grid, exps) if p["best"]), None)
    return {
        "event": SWEEP_FINISHED,
        "sweep": {
            "id": sweep.id,
            "name": sweep.name,
            "experiments": len(exps),
            "counts": status_counts(exps),
            "best": None if best is None else {
                "params": best["params"],
                "experiment_ids": best["experiment_ids"],
                "metrics": best["metrics"],
            },
            "created_at": _iso(sweep.created_at),
            "finished_at": _iso(max((e.finished_at for e in exps if e.finished_at), default=None)),
            "url": f"/v1/sweeps/{sweep.id}",
            "dashboard_url": f"/ui/sweeps/{sweep.id}",
        },
    }  # fmt: skip


def enqueue_for_experiment(session: Session, experiment_id: int) -> int:
    """Queue the events of an experiment that has just reached a finished status (in the
    transaction that finished it): `experiment.finished`, and `sweep.finished` when it was
    the last of its sweep. Returns how many deliveries were queued; cheap for an owner
    without webhooks (one indexed SELECT)."""
    exp = session.execute(
        select(Experiment)
        .where(Experiment.id == experiment_id)
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if exp is None or exp.status not in FINISHED or not _has_hooks(session, exp.owner_id):
        return 0
    count = enqueue(session, exp.owner_id, EXPERIMENT_FINISHED, experiment_payload(exp))
    if exp.sweep_id is not None:
        payload = sweep_payload(session, exp.sweep_id)
        if payload is not None:
            count += enqueue(session, exp.owner_id, SWEEP_FINISHED, payload)
    return count
