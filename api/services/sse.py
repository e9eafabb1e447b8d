"""The server-sent-event loop an experiment's progress stream and its log stream share.

A stream sends `retry:` first, then whatever each read of the database gives, a comment
every `KEEPALIVE_S` seconds so proxies keep the connection open, and ends when the read
says so, when the client goes away, or after `max_s` seconds (the client reconnects with
`Last-Event-ID` and misses nothing). Between reads it sleeps until the process's shared
poller (`api.services.change_watch`) saw its job change, or, without one, `poll_s`
seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse

from api.services.change_watch import ChangeWatch, MarkReader
from store import updates

#: Seconds between two database polls of one stream.
POLL_S = 0.5
#: Seconds between keep-alive comments.
KEEPALIVE_S = 15.0
#: Milliseconds a browser waits before reconnecting (the SSE `retry:` field).
RETRY_MS = 3000


def format_event(event: str, data: Any, event_id: str | None = None) -> str:
    """One SSE message: `event:`, optional `id:`, and the JSON `data:` line."""
    lines = [f"event: {event}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append(f"data: {json.dumps(data, separators=(',', ':'), default=str)}")
    return "\n".join(lines) + "\n\n"


@dataclass
class Read:
    """What one read of a stream gives: the messages to send, whether the stream ends with
    them, and whether more is waiting already (read again at once, without sleeping)."""

    messages: Sequence[str] = field(default_factory=list)
    done: bool = False
    more: bool = False


async def poll_stream(
    read: Callable[[], Awaitable[Read]],
    key: int,
    *,
    is_disconnected: Callable[[], Awaitable[bool]] | None = None,
    poll_s: float = POLL_S,
    max_s: float | None = None,
    watch: ChangeWatch | None = None,
) -> AsyncIterator[str]:
    """SSE text: `read()` again and again (see the module), woken by `watch`'s changes of
    `key` (an experiment id) when given."""
    opened = time.monotonic()
    news = watch.watch(key) if watch is not None else None
    try:
        yield f"retry: {RETRY_MS}\n\n"
        last_sent = time.monotonic()
        while True:
            if news is not None:
                news.clear()  # before reading: a change seen meanwhile sets it again
            got = await read()
            for message in got.messages:
                yield message
            if got.messages:
                last_sent = time.monotonic()
            if got.done:
                return
            if got.more:
                continue
            if time.monotonic() - last_sent >= KEEPALIVE_S:
                yield ": keepalive\n\n"
                last_sent = time.monotonic()
            if is_disconnected is not None and await is_disconnected():
                return
            now = time.monotonic()
            if max_s is not None and now - opened >= max_s:
                return
            if news is None:
                await asyncio.sleep(poll_s)
                continue
            wait = KEEPALIVE_S - (now - last_sent)
            if max_s is not None:
                wait = min(wait, max_s - (now - opened))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(news.wait(), timeout=max(0.0, wait))
    finally:
        if news is not None and watch is not None:
            watch.unwatch(key, news)


def read_factory(request: Request):
    """The sessions a stream reads with: the read replica's when configured."""
    state = request.app.state
    return getattr(state, "read_session_factory", state.session_factory)


def shared_watch(
    request: Request, name: str, poll_s: float, marks: MarkReader | None = None
) -> ChangeWatch:
    """The app's one poller of the open streams of one kind (`name`: an attribute of the
    app's state), created with the first such stream."""
    state = request.app.state
    watch = getattr(state, name, None)
    if watch is None:
        watch = ChangeWatch(read_factory(request), poll_s, marks or updates.marks)
        setattr(state, name, watch)
    return watch


def stream_response(
    request: Request,
    stream: Callable[..., AsyncIterator[str]],
    *args: Any,
    watch_name: str,
    marks: MarkReader | None = None,
    **kwargs: Any,
) -> StreamingResponse:
    """`stream(read_factory, *args, **kwargs)` as a streaming response, with the request's
    disconnect check, the app's poll interval and stream limit, and its shared poller."""
    state = request.app.state
    poll_s = getattr(state, "events_poll_s", POLL_S)
    return StreamingResponse(
        stream(
            read_factory(request),
            *args,
            is_disconnected=request.is_disconnected,
            poll_s=poll_s,
            max_s=state.settings.events_max_s,
            watch=shared_watch(request, watch_name, poll_s, marks),
            **kwargs,
        ),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
