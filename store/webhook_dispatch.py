"""The dispatcher's side of the webhook outbox (`store.webhooks`): finding, claiming and
closing due deliveries, safe with any number of dispatchers on SQLite and PostgreSQL.

A claim counts the attempt and moves `next_attempt_at` a lease ahead, guarded by the
attempt count (so one attempt is made once, and a dispatcher that died is replaced when
its lease ends); `record_attempt` writes delivered, a retry after back-off, or failed.

Functions here flush but never commit: the caller's unit of work does (see `store.db`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from store.jobs import is_postgres
from store.models import utcnow
from store.records import Webhook, WebhookDelivery
from store.webhooks import DELIVERED, FAILED, PENDING


@dataclass(frozen=True)
class DueDelivery:
    """A delivery claimed for one attempt: what to send, where, and with which secret."""

    id: int
    webhook_id: int
    event: str
    payload: dict[str, Any]
    url: str
    secret: str
    attempt: int  # this attempt's number, from 1


def any_due(session: Session) -> bool:
    """True when some pending delivery is due (one indexed read; no lock taken)."""
    found = session.execute(
        select(WebhookDelivery.id)
        .where(WebhookDelivery.status == PENDING, WebhookDelivery.next_attempt_at <= utcnow())
        .limit(1)
    ).first()
    return found is not None


def claim_due(session: Session, lease_s: float, limit: int = 20) -> list[DueDelivery]:
    """Claim up to `limit` pending deliveries that are due, for one attempt each: the
    attempt is counted and `next_attempt_at` moved `lease_s` seconds ahead (if this
    dispatcher dies, another retries after the lease). Flushes; commit before sending."""
    now = utcnow()
    due = (
        select(WebhookDelivery.id, WebhookDelivery.attempts)
        .where(WebhookDelivery.status == PENDING, WebhookDelivery.next_attempt_at <= now)
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
        .limit(limit)
    )
    if is_postgres(session):
        due = due.with_for_update(skip_locked=True)
    claimed: dict[int, int] = {}
    for row in session.execute(due).all():
        won = session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.id == row.id,
                WebhookDelivery.status == PENDING,
                WebhookDelivery.attempts == row.attempts,
            )
            .values(attempts=row.attempts + 1, next_attempt_at=now + timedelta(seconds=lease_s))
            .execution_options(synchronize_session=False)
        ).rowcount
        if won == 1:
            claimed[row.id] = row.attempts + 1
    if not claimed:
        return []
    rows = session.execute(
        select(WebhookDelivery, Webhook.url, Webhook.secret)
        .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
        .where(WebhookDelivery.id.in_(list(claimed)))
        .order_by(WebhookDelivery.id)
    ).all()
    return [
        DueDelivery(d.id, d.webhook_id, d.event, d.payload, url, secret, claimed[d.id])
        for d, url, secret in rows
    ]


def record_attempt(
    session: Session,
    delivery: DueDelivery,
    *,
    delivered: bool,
    status_code: int | None,
    error: str | None,
    max_attempts: int,
    backoff_s: float,
) -> str | None:
    """Write how an attempt went: `delivered`; else retried after backoff_s × 2^(attempt−1)
    seconds, or `failed` once `max_attempts` attempts were made. Returns the new status, or
    None when the attempt was no longer this dispatcher's (its lease ran out and another
    dispatcher took it over)."""
    now = utcnow()
    values: dict[str, Any] = {"last_status_code": status_code, "last_error": error}
    if delivered:
        values.update(status=DELIVERED, delivered_at=now, next_attempt_at=None, last_error=None)
    elif delivery.attempt >= max_attempts:
        values.update(status=FAILED, next_attempt_at=None)
    else:
        delay = backoff_s * 2 ** (delivery.attempt - 1)
        values.update(next_attempt_at=now + timedelta(seconds=delay))
    changed = session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery.id,
            WebhookDelivery.status == PENDING,
            WebhookDelivery.attempts == delivery.attempt,
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    ).rowcount
    return values.get("status", PENDING) if changed == 1 else None
