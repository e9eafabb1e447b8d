"""Webhooks: `add_webhook`, `webhooks`, `webhook`, `remove_webhook`, `deliveries`,
`test_webhook`.

Mixed into `client.http.Client`: methods here call `self.send`, `self.request` and
`self._model` as the rest of the client does.

    hook = ewc.add_webhook("https://example.org/hooks/ewc")   # hook.secret: shown this once
    ewc.test_webhook(hook.id)                                 # queue a "ping"
    [(d.event, d.status, d.last_status_code) for d in ewc.deliveries(hook.id)]
"""

from __future__ import annotations

from typing import Any

from common.schemas_webhooks import (
    DeliveryList,
    DeliveryOut,
    WebhookCreated,
    WebhookList,
    WebhookOut,
)


class WebhooksMixin:
    """The client's webhooks calls."""

    def add_webhook(self, url: str, events: list[str] | None = None) -> WebhookCreated:
        """A new webhook POSTed to on `events` (default: experiment.finished and
        sweep.finished); the answer's `secret` signs every call and is shown only here."""
        body: dict[str, Any] = {"url": url}
        if events:
            body["events"] = list(events)
        return self._model(WebhookCreated, "POST", "/v1/webhooks", json=body)

    def webhooks(self, all: bool = False) -> list[WebhookOut]:
        """Your webhooks (`all=True`, for an admin: everyone's)."""
        params = {"all": "true"} if all else {}
        return self._model(WebhookList, "GET", "/v1/webhooks", params=params).items

    def webhook(self, webhook_id: int) -> WebhookOut:
        return self._model(WebhookOut, "GET", f"/v1/webhooks/{webhook_id}")

    def remove_webhook(self, webhook_id: int) -> None:
        """Remove a webhook and its delivery log."""
        self.send("DELETE", f"/v1/webhooks/{webhook_id}")

    def deliveries(self, webhook_id: int | None = None, limit: int = 50) -> list[DeliveryOut]:
        """The newest deliveries of one webhook of yours, or of all of them."""
        path = (
            "/v1/webhooks/deliveries"
            if webhook_id is None
            else f"/v1/webhooks/{webhook_id}/deliveries"
        )
        return self._model(DeliveryList, "GET", path, params={"limit": limit}).items

    def test_webhook(self, webhook_id: int) -> DeliveryOut:
        """Queue a `ping` delivery to the webhook (a worker sends it)."""
        return self._model(DeliveryOut, "POST", f"/v1/webhooks/{webhook_id}/test")
