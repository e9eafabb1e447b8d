"""Webhooks: `add_webhook`, `webhooks`, `remove_webhook`, `deliveries`.

Mixed into `client.http.Client`: methods here call `self.send`, `self.request` and
`self._model` as the rest of the client does.
"""

from __future__ import annotations


class WebhooksMixin:
    """The client's webhooks calls."""
