"""Admission control: at most `limit` requests are worked on at once; the rest wait briefly.

An ASGI middleware in front of the app. A request past the limit waits in a bounded queue
(first come, first served) for at most `queue_timeout_s` seconds; when the queue is full,
or its wait runs out, it gets a fast 503 with `Retry-After` and a message that says the
server is busy. A request whose client disconnects while it waits is dropped without
running (no work for clients that left).

Why: each request needs a worker thread and, while it runs, a database connection. With
no more requests admitted than there are threads (and connections: the pool is sized from
the same number, see `api.app`), an admitted request never waits for a thread while
holding a connection — the wedge where waiting requests hold every thread and connection
holders wait for a thread cannot form.

Not counted: `/healthz` (a liveness probe must answer under load), and an event stream
once its headers are sent (a stream lasts long; its polls are short and hold nothing
between them).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections import deque
from typing import Any

from prometheus_client import Counter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("ewc.api")

#: Body bytes read ahead (to notice a client that leaves) while a request waits.
READ_AHEAD_BYTES = 64 * 1024
#: Paths that are never queued.
EXEMPT_PATHS = frozenset({"/healthz"})


def busy_message(retry_after_s: int) -> str:
    """The 503 text: busy, not broken; when to retry."""
    return (
        "the server is busy (too many requests at once); nothing was done — retry in "
        f"{retry_after_s} s"
    )


class ConcurrencyLimit:
    """ASGI middleware: `limit` requests at a time, `max_queue` waiting at most
    `queue_timeout_s` seconds each, the rest a 503 with `Retry-After: retry_after_s`."""

    def __init__(
        self,
        app: ASGIApp,
        limit: int,
        max_queue: int,
        queue_timeout_s: float,
        retry_after_s: int = 2,
    ):
        if limit < 1:
            raise ValueError("the concurrency limit must be at least 1")
        self.app = app
        self.limit = limit
        self.max_queue = max(0, max_queue)
        self.queue_timeout_s = queue_timeout_s
        self.retry_after_s = max(1, math.ceil(retry_after_s))
        self.active = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        #: Requests refused: "busy" (503) and "client_left" (dropped while waiting).
        self.refused: dict[str, int] = {"busy": 0, "client_left": 0}
        self._metric: tuple[Any, Counter] | None = None

    def _count(self, scope: Scope, reason: str) -> None:
        """Count a refusal here and in the app's Prometheus registry (`/metrics`:
        `ewc_http_refused_total{reason}`); the registry is built by the app's lifespan."""
        self.refused[reason] += 1
        registry = getattr(getattr(scope.get("app"), "state", None), "registry", None)
        if registry is None:
            return
        if self._metric is None or self._metric[0] is not registry:
            counter = Counter(
                "ewc_http_refused",
                "Requests refused before any work: busy (503) or client_left (dropped)",
                ["reason"],
                registry=registry,
            )
            self._metric = (registry, counter)
        self._metric[1].labels(reason).inc()

    # Slots ---------------------------------------------------------------------------

    def _release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes on: `active` stays the same
                return
        self.active -= 1

    async def _acquire(self, receive: Receive) -> tuple[bool, list[Message]]:
        """(admitted, messages received while waiting). Not admitted: 503 (or client left:
        then the buffered messages end with `http.disconnect`)."""
        if self.active < self.limit and not self._waiters:
            self.active += 1
            return True, []
        if len(self._waiters) >= self.max_queue:
            return False, []
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        buffered: list[Message] = []
        disconnected = asyncio.Event()

        async def watch() -> None:
            # Read ahead (a GET's empty body, then the disconnect if the client leaves);
            # the app gets every message replayed. A large body is left unread.
            size = 0
            while size <= READ_AHEAD_BYTES:
                message = await receive()
                buffered.append(message)
                if message["type"] == "http.disconnect":
                    disconnected.set()
                    return
                size += len(message.get("body", b""))

        watcher = asyncio.ensure_future(watch())
        left = asyncio.ensure_future(disconnected.wait())
        try:
            await asyncio.wait(
                {waiter, left}, timeout=self.queue_timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            watcher.cancel()
            left.cancel()
        if waiter.done() and not waiter.cancelled():
            if disconnected.is_set():  # admitted, but nobody is listening any more
                self._release()
                return False, buffered
            return True, buffered
        waiter.cancel()  # timed out or the client left: give up the place in the queue
        with contextlib.suppress(ValueError):
            self._waiters.remove(waiter)
        return False, buffered

    # ASGI ----------------------------------------------------------------------------

    async def _reject(self, send: Send) -> None:
        body = json.dumps({"detail": busy_message(self.retry_after_s)}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 503,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", str(self.retry_after_s).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        admitted, buffered = await self._acquire(receive)
        if not admitted:
            if buffered and buffered[-1]["type"] == "http.disconnect":
                self._count(scope, "client_left")
                log.info("event=request_dropped path=%s reason=client_left", scope.get("path"))
                return
            log.warning(
                "event=request_rejected path=%s active=%s waiting=%s waited_s=%.2f",
                scope.get("path"), self.active, len(self._waiters), time.monotonic() - started,
            )  # fmt: skip
            self._count(scope, "busy")
            await self._reject(send)
            return
        held = True

        async def replay() -> Message:
            if buffered:
                return buffered.pop(0)
            return await receive()

        async def tracking_send(message: Message) -> None:
            nonlocal held
            if held and message["type"] == "http.response.start" and _is_stream(message):
                held = False  # a long stream: its slot goes to the next request
                self._release()
            await send(message)

        try:
            await self.app(scope, replay, tracking_send)
        finally:
            if held:
                self._release()


def _is_stream(message: Message) -> bool:
    for name, value in message.get("headers", ()):
        if name.lower() == b"content-type" and value.startswith(b"text/event-stream"):
            return True
    return False

