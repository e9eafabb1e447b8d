"""Delivering webhooks: the dispatcher every `ewc worker` runs in a daemon thread.

Every DISPATCH_POLL_S seconds the dispatcher claims the due deliveries of the outbox
(`store.webhook_dispatch.claim_due`, safe with any number of dispatchers), POSTs each with
httpx and writes how it went (`store.webhook_dispatch.record_attempt`): a 2xx is delivered;
anything else (another status, a redirect — never followed —, a timeout, a refused
connection) is retried after EWC_WEBHOOK_BACKOFF_S × 2^(attempt−1) seconds, up to
EWC_WEBHOOK_MAX_ATTEMPTS tries, then marked failed. The call is never made inside a
database transaction.

Each call carries:

- `X-EWC-Event`: the event (`experiment.finished`, `sweep.finished`, `ping`);
- `X-EWC-Delivery`: the delivery's id (the same on every retry: a receiver can de-duplicate);
- `X-EWC-Timestamp`: Unix seconds of this attempt;
- `X-EWC-Signature`: `sha256=` + hex HMAC-SHA256, keyed with the webhook's secret, of
  `"<timestamp>.<body>"` — the timestamp is signed so a recorded call cannot be replayed
  later with a fresh one.

Imports no TensorFlow (nothing of `worker.runner`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from dataclasses import dataclass

import httpx
from sqlalchemy.orm import Session, sessionmaker

from common.schemas_webhooks import with_links
from common.settings import Settings
from store import webhook_dispatch
from store.db import make_session_factory, read_engine, unit_of_work

log = logging.getLogger("ewc.worker")

#: Seconds between the dispatcher's looks at the outbox.
DISPATCH_POLL_S = 1.0
#: Deliveries one pass claims at once, and the seconds a claimed batch stays with its
#: dispatcher beyond their calls' timeouts (then another dispatcher may retry them).
CLAIM_BATCH = 5
LEASE_MARGIN_S = 30.0
#: Characters of a receiver's answer kept in `last_error`.
ERROR_CHARS = 300
USER_AGENT = "EWC-Server-Webhooks/1"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The `X-EWC-Signature` value: sha256=<hex HMAC-SHA256 of b"<timestamp>.<body>">."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def links_base(settings: Settings) -> str:
    """Where payload links point: EWC_PUBLIC_URL, else http://<host>:<port>."""
    return (settings.public_url or f"http://{settings.host}:{settings.port}").rstrip("/")


def body_of(delivery: webhook_dispatch.DueDelivery, base_url: str) -> bytes:
    """The JSON body sent (compact, keys in order): the payload with absolute links."""
    payload = {**with_links(delivery.payload, base_url), "delivery_id": delivery.id}
    return json.dumps(payload, separators=(",", ":"), default=str).encode()


@dataclass(frozen=True)
class Attempt:
    """How one call went."""

    delivered: bool
    status_code: int | None
    error: str | None


def call(http: httpx.Client, delivery: webhook_dispatch.DueDelivery, base_url: str) -> Attempt:
    """POST the delivery to its webhook once (redirects are not followed)."""
    body = body_of(delivery, base_url)
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-EWC-Event": delivery.event,
        "X-EWC-Delivery": str(delivery.id),
        "X-EWC-Timestamp": timestamp,
        "X-EWC-Signature": sign(delivery.secret, timestamp, body),
    }
    try:
        resp = http.post(delivery.url, content=body, headers=headers)
    except Exception as exc:  # noqa: BLE001 - network, httpx.InvalidURL, IDNA: all a failed try
        return Attempt(False, None, f"{type(exc).__name__}: {exc}"[:ERROR_CHARS])
    if 200 <= resp.status_code < 300:
        return Attempt(True, resp.status_code, None)
    if resp.is_redirect:
        where = resp.headers.get("location", "?")
        return Attempt(False, resp.status_code, f"redirect to {where} not followed"[:ERROR_CHARS])
    text = " ".join(resp.text.split())[:ERROR_CHARS]
    return Attempt(
        False, resp.status_code, f"HTTP {resp.status_code}" + (f": {text}" if text else "")
    )


def readers(sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    """Sessions like `sessions` that take no write lock on SQLite (`store.db.read_engine`),
    for the look that finds nothing due: a pass a second must not queue writers."""
    bind = sessions.kw.get("bind")
    return make_session_factory(read_engine(bind)) if bind is not None else sessions


def dispatch_due(
    sessions: sessionmaker[Session], settings: Settings, http: httpx.Client | None = None
) -> int:
    """Claim the due deliveries, call each once and record the outcome; returns how many
    attempts were made."""
    lease_s = CLAIM_BATCH * settings.webhook_timeout_s + LEASE_MARGIN_S
    with unit_of_work(readers(sessions)) as session:  # most passes end here, lock-free
        if not webhook_dispatch.any_due(session):
            return 0
    with unit_of_work(sessions) as session:
        due = webhook_dispatch.claim_due(session, lease_s, limit=CLAIM_BATCH)
    if not due:
        return 0
    own = http is None
    http = http or httpx.Client(timeout=settings.webhook_timeout_s, follow_redirects=False)
    base = links_base(settings)
    try:
        for delivery in due:
            attempt = call(http, delivery, base)
            with unit_of_work(sessions) as session:
                status = webhook_dispatch.record_attempt(
                    session,
                    delivery,
                    delivered=attempt.delivered,
                    status_code=attempt.status_code,
                    error=attempt.error,
                    max_attempts=settings.webhook_max_attempts,
                    backoff_s=settings.webhook_backoff_s,
                )
            log.info(
                "event=webhook_attempt delivery_id=%s webhook_id=%s hook_event=%s attempt=%s "
                "status_code=%s outcome=%s error=%r",
                delivery.id,
                delivery.webhook_id,
                delivery.event,
                delivery.attempt,
                attempt.status_code,
                status,
                attempt.error,
            )
    finally:
        if own:
            http.close()
    return len(due)


class WebhookDispatcher(threading.Thread):
    """Runs `dispatch_due` every `poll_s` seconds until `stop`."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        settings: Settings,
        poll_s: float = DISPATCH_POLL_S,
    ):
        super().__init__(name="webhook-dispatcher", daemon=True)
        self.sessions, self.settings, self.poll_s = sessions, settings, poll_s
        self.done = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=self.settings.webhook_timeout_s, follow_redirects=False) as http:
            while not self.done.is_set():
                try:
                    dispatch_due(self.sessions, self.settings, http)
                except Exception as exc:  # noqa: BLE001 - database away: try again later
                    log.warning("event=webhook_dispatch_failed error=%r", str(exc)[:300])
                self.done.wait(self.poll_s)

    def stop(self) -> None:
        """End the thread after the pass in progress."""
        self.done.set()
        self.join(timeout=self.settings.webhook_timeout_s + 5)
