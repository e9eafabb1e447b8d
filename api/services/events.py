"""An experiment's live progress as server-sent events (the v1 route and the dashboard's).

The worker is another process, so the stream reads the database (in a worker thread so
the event loop never blocks) when the process's one poller of open streams saw a change
(`api.services.change_watch`, every `POLL_S` seconds), and sends what is new:

- `status` — {"id", "status", "progress", "error", "summary", "cancel_requested"}: first,
  and whenever the status changes;
- `epoch` — one stored epoch row {"task", "epoch", "task_epoch", "loss", "val_accuracy",
  "train_s", "eval_s"}, in epoch order;
- `task` — one finished task {"task", "test_accuracy", "fisher_s", "frozen_fraction"},
  after that task's epochs;
- `end` — {"status", "summary", "error"} once the job has finished; then the stream closes.

Each event carries an id "<epoch>.<task>" (the last ones sent); a client reconnecting with
`Last-Event-ID` (EventSource does this) gets only what it has not seen. A comment line is
sent every `KEEPALIVE_S` seconds so proxies keep the connection open.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from api import parsing
from api.services.change_watch import ChangeWatch
from store import updates
from store.models import Experiment

#: Seconds between two database polls of one stream.
POLL_S = 0.5
#: Seconds between keep-alive comments.
KEEPALIVE_S = 15.0
#: Milliseconds a browser waits before reconnecting (the SSE `retry:` field).
RETRY_MS = 3000


@dataclass
class _Cursor:
    epoch: int = 0
    task: int = 0
    status: str | None = None

    @property
    def event_id(self) -> str:
        return f"{self.epoch}.{self.task}"


def parse_last_event_id(value: str | None) -> tuple[int, int]:
    """(epoch, task) from a Last-Event-ID "<epoch>.<task>"; (0, 0) when absent or malformed
    (non-ASCII digits, or numbers no row can hold: `api.parsing.parse_last_event_id`)."""
    return parsing.parse_last_event_id(value) or (0, 0)


def format_event(event: str, data: Any, event_id: str | None = None) -> str:
    """One SSE message: `event:`, optional `id:`, and the JSON `data:` line."""
    lines = [f"event: {event}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append(f"data: {json.dumps(data, separators=(',', ':'), default=str)}")
    return "\n".join(lines) + "\n\n"


def status_document(e: Experiment) -> dict[str, Any]:
    """The data of a `status` event."""
    return {
        "id": e.id,
        "status": e.status.value,
        "progress": e.progress,
        "error": e.error,
        "summary": e.summary,
        "cancel_requested": e.cancel_requested,
    }


def poll_once(
    factory: sessionmaker[Session], experiment_id: int, cursor: _Cursor
) -> tuple[list[tuple[str, Any]], bool]:
    """The events that are new since `cursor` (which it advances), and whether the job ended.

    The status is read before the rows: a job seen finished has all its rows committed, so
    nothing stored is missed before `end`.
    """
    with factory() as session:
        exp, epochs, tasks = updates.rows_since(session, experiment_id, cursor.epoch, cursor.task)
        if exp is None:  # deleted while streaming
            return [("end", {"status": "deleted", "summary": None, "error": None})], True
        status_doc = status_document(exp)
        finished = exp.status.finished
        rows: list[tuple[tuple, str, dict[str, Any]]] = [
            ((r.task, 0, r.epoch), "epoch", {
                "task": r.task, "epoch": r.epoch, "task_epoch": r.task_epoch, "loss": r.loss,
                "val_accuracy": r.val_accuracy, "train_s": r.train_s, "eval_s": r.eval_s,
            })
            for r in epochs
        ] + [
            ((r.task, 1, 0), "task", {
                "task": r.task, "test_accuracy": r.test_accuracy, "fisher_s": r.fisher_s,
                "frozen_fraction": r.frozen_fraction,
            })
            for r in tasks
        ]  # fmt: skip
    events: list[tuple[str, Any]] = []
    status_changed = status_doc["status"] != cursor.status
    if status_changed and not finished:
        events.append(("status", status_doc))
    for _, kind, data in sorted(rows, key=lambda r: r[0]):
        if kind == "epoch":
            cursor.epoch = max(cursor.epoch, data["epoch"])
        else:
            cursor.task = max(cursor.task, data["task"])
        events.append((kind, data))
    if status_changed and finished:
        events.append(("status", status_doc))
    cursor.status = status_doc["status"]
    if finished:
        events.append(
            ("end", {k: status_doc[k] for k in ("status", "summary", "error")})
        )
    return events, finished


async def event_stream(
    factory: sessionmaker[Session],
    experiment_id: int,
    *,
    last_event_id: str | None = None,
    is_disconnected: Callable[[], Awaitable[bool]] | None = None,
    poll_s: float = POLL_S,
    max_s: float | None = None,
    watch: ChangeWatch | None = None,
) -> AsyncIterator[str]:
    """SSE text for one experiment until its job ends, the client goes away, or `max_s`
    seconds have passed (the client then reconnects with Last-Event-ID and misses nothing;
    a stream is never held open forever by a job that waits for days).

    With `watch` the stream reads the database only when the shared poller saw a change
    (`api.services.change_watch`); without, it polls every `poll_s` seconds itself."""
    opened = time.monotonic()
    epoch, task = parse_last_event_id(last_event_id)
    cursor = _Cursor(epoch=epoch, task=task)
    news = watch.watch(experiment_id) if watch is not None else None
    try:
        yield f"retry: {RETRY_MS}\n\n"
        last_sent = time.monotonic()
        while True:
            if news is not None:
                news.clear()  # before reading: a change seen meanwhile sets it again
            events, finished = await run_in_threadpool(poll_once, factory, experiment_id, cursor)
            for kind, data in events:
                yield format_event(kind, data, cursor.event_id)
            if events:
                last_sent = time.monotonic()
            if finished:
                return
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
            watch.unwatch(experiment_id, news)


def _watch(request: Request, poll_s: float) -> ChangeWatch:
    """The app's shared poller of open streams (created with the first stream)."""
    state = request.app.state
    watch = getattr(state, "change_watch", None)
    if watch is None:
        factory = getattr(state, "read_session_factory", state.session_factory)
        watch = state.change_watch = ChangeWatch(factory, poll_s)
    return watch


def sse_response(request: Request, experiment_id: int, last_event_id: str | None) -> StreamingResponse:
    """The streaming response of an experiment's events (shared with the dashboard)."""
    state = request.app.state
    poll_s = getattr(state, "events_poll_s", POLL_S)
    return StreamingResponse(
        event_stream(
            getattr(state, "read_session_factory", state.session_factory),
            experiment_id,
            last_event_id=last_event_id,
            is_disconnected=request.is_disconnected,
            poll_s=poll_s,
            max_s=state.settings.events_max_s,
            watch=_watch(request, poll_s),
        ),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
