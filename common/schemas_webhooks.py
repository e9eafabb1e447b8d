"""The webhooks API's bodies (pydantic), shared by the API and the Python client.

Pure pydantic, like `common.schemas`. A webhook's secret is in `WebhookCreated` only (the
answer to its creation); listings show `secret_prefix`. `with_links` makes a stored
payload's links absolute, for the call itself and for the delivery log.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: What a webhook can ask for (`store.webhooks.EVENTS`; a test holds them equal).
WebhookEvent = Literal["experiment.finished", "sweep.finished"]
#: Longest URL stored.
MAX_URL_CHARS = 2000


def check_url(url: str) -> str:
    """`url`, stripped, if it is an absolute http(s) URL with a host; else ValueError."""
    url = url.strip()
    if len(url) > MAX_URL_CHARS:
        raise ValueError(f"at most {MAX_URL_CHARS} characters")
    if any(c.isspace() or not c.isprintable() for c in url):
        raise ValueError("a URL has no spaces or control characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as exc:
        raise ValueError(f"not a URL ({exc})") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError(
            f"must start with http:// or https:// (not {parts.scheme + ':' if parts.scheme else 'nothing'})"
        )
    if not parts.hostname:
        raise ValueError("names no host, e.g. https://example.org/hooks/ewc")
    return url


class WebhookIn(BaseModel):
    """A new webhook: where to POST, and for which events (default: all)."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(description="http:// or https:// URL the events are POSTed to")
    events: list[WebhookEvent] | None = Field(
        default=None,
        min_length=1,
        description="Events to send (default: experiment.finished and sweep.finished)",
    )

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        return check_url(url)


class WebhookOut(BaseModel):
    """A webhook as listed: its secret only by its first characters."""

    id: int
    owner: str
    url: str
    events: list[str]
    active: bool
    secret_prefix: str
    created_at: datetime


class WebhookCreated(WebhookOut):
    """The answer to a creation: the one time the whole secret is shown."""

    secret: str = Field(description="HMAC-SHA256 key of the X-EWC-Signature header; shown once")


class WebhookList(BaseModel):
    items: list[WebhookOut]


class DeliveryOut(BaseModel):
    """One event for one webhook and how its delivery went."""

    id: int
    webhook_id: int
    event: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    next_attempt_at: datetime | None = None
    last_status_code: int | None = None
    last_error: str | None = None
    created_at: datetime
    delivered_at: datetime | None = None
    payload: dict[str, Any]


class DeliveryList(BaseModel):
    items: list[DeliveryOut]


def with_links(payload: dict[str, Any], base_url: str) -> dict[str, Any]:
    """`payload` with every `url` / `*_url` path ("/v1/...") made absolute on `base_url`."""
    base = base_url.rstrip("/")

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                k: base + v
                if (k == "url" or k.endswith("_url")) and isinstance(v, str) and v.startswith("/")
                else walk(v)
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(payload)
