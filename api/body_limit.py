"""Reject request bodies larger than the settings' `max_body_bytes` with 413.

A declared `Content-Length` above the limit is refused before the app sees anything: the
body is first read and thrown away (up to `DRAIN_MAX_BYTES` and `DRAIN_MAX_S`), as mature
servers do, since closing the connection while the client still sends makes its kernel
see a reset instead of the 413 (Python's urllib sends the whole body before it reads). A
client that sent `Expect: 100-continue` has not sent its body, so it is answered at once.
A body without a length (chunked) is counted as it streams and refused as soon as it
passes the limit. `routes` gives a path a limit (and 413 message) of its own: the dataset
upload takes files of up to `EWC_MAX_DATASET_MB` (`api.services.datasets`).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def too_large_message(max_bytes: int) -> str:
    """The 413 message: the limit and the setting that raises it."""
    return (
        f"request body is larger than this server's limit of {max_bytes} bytes (EWC_MAX_BODY_BYTES)"
    )


class BodyTooLarge(HTTPException):
    """Raised while reading a streamed body that passes the limit (FastAPI answers 413)."""

    def __init__(self, max_bytes: int, message: str | None = None):
        super().__init__(status_code=413, detail=message or too_large_message(max_bytes))


#: Most of a refused body read and thrown away before the 413 is sent, and the longest
#: that takes; beyond either the connection is closed (the client may then see a reset).
DRAIN_MAX_BYTES = 16 * 1024 * 1024
DRAIN_MAX_S = 30.0


async def drain(receive: Receive, received: int = 0, more_body: bool = True) -> None:
    """Read and discard the request body until it ends, or the bounds are reached."""
    deadline = time.monotonic() + DRAIN_MAX_S
    while more_body and received <= DRAIN_MAX_BYTES:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        try:
            message = await asyncio.wait_for(receive(), left)
        except TimeoutError:
            return
        if message["type"] != "http.request":
            return  # the client went away
        received += len(message.get("body", b""))
        more_body = message.get("more_body", False)


def _expects_continue(scope: Scope) -> bool:
    return any(
        name == b"expect" and value.lower() == b"100-continue"
        for name, value in scope.get("headers", ())
    )


class BodySizeLimit:
    """ASGI middleware: 413 for request bodies over `max_bytes`."""

    def __init__(self, app: ASGIApp, max_bytes: int,
                 routes: Mapping[str, tuple[int, str]] | None = None):
        self.app = app
        self.max_bytes = max_bytes
        self.routes = dict(routes or {})  # path → (its limit, its 413 message)

    async def _reject(self, send: Send, message: str) -> None:
        body = json.dumps({"detail": message}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes, refusal = self.routes.get(
            scope.get("path", ""), (self.max_bytes, too_large_message(self.max_bytes))
        )
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > max_bytes:
                    if not _expects_continue(scope):
                        await drain(receive)
                    await self._reject(send, refusal)
                    return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    # FastAPI answers the 413 and keeps the connection, whose server
                    # (uvicorn) then reads and discards the rest itself.
                    raise BodyTooLarge(max_bytes, refusal)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._reject(send, refusal)
