"""Webhooks for the v1 routes and the dashboard: rows → bodies (`common.schemas_webhooks`).

A webhook is private to its owner: someone else's answers 404 as if it did not exist (an
admin may list everyone's with `?all=true` and remove any). The delivery log shows each
payload as it is sent, its links made absolute (EWC_PUBLIC_URL, else http://<host>:<port>).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from common.schemas_webhooks import DeliveryOut, WebhookCreated, WebhookOut, with_links
from common.settings import Settings
from store import webhooks as store_webhooks
from store.models import User
from store.records import Webhook, WebhookDelivery


def links_base(settings: Settings) -> str:
    """Where payload links point (the same rule as `worker.webhooks.links_base`)."""
    return (settings.public_url or f"http://{settings.host}:{settings.port}").rstrip("/")


def webhook_out(webhook: Webhook, owner: str) -> WebhookOut:
    return WebhookOut(
        id=webhook.id,
        owner=owner,
        url=webhook.url,
        events=list(webhook.events or []),
        active=webhook.active,
        secret_prefix=store_webhooks.shown_secret(webhook.secret),
        created_at=webhook.created_at,
    )


def created_out(webhook: Webhook, owner: str) -> WebhookCreated:
    """The answer to a creation: the listing's fields and the whole secret, once."""
    return WebhookCreated(**webhook_out(webhook, owner).model_dump(), secret=webhook.secret)


def listing(session: Session, user: User, everyone: bool) -> list[WebhookOut]:
    """The user's webhooks, or (`everyone`, for an admin) all of them."""
    hooks = store_webhooks.list_webhooks(session, None if everyone else user.id)
    names = store_webhooks.owner_names(session, hooks)
    return [webhook_out(h, names.get(h.owner_id, "?")) for h in hooks]


def delivery_out(delivery: WebhookDelivery, settings: Settings) -> DeliveryOut:
    return DeliveryOut(
        id=delivery.id,
        webhook_id=delivery.webhook_id,
        event=delivery.event,
        status=delivery.status,
        attempts=delivery.attempts,
        next_attempt_at=delivery.next_attempt_at,
        last_status_code=delivery.last_status_code,
        last_error=delivery.last_error,
        created_at=delivery.created_at,
        delivered_at=delivery.delivered_at,
        payload=with_links(delivery.payload or {}, links_base(settings)),
    )


def deliveries(
    session: Session, settings: Settings, user: User, webhook_id: int | None, limit: int
) -> list[DeliveryOut]:
    """The newest deliveries of the user's webhooks (or of one of them: 404 when it is not
    the user's, an admin's included)."""
    if webhook_id is not None:
        store_webhooks.get_webhook(session, webhook_id, user.id)
    rows = store_webhooks.list_deliveries(session, user.id, webhook_id, limit)
    return [delivery_out(d, settings) for d in rows]
