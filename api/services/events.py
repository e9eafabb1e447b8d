"""An experiment's live progress as server-sent events (the v1 route and the dashboard's).

The worker is another process, so the stream reads the database (in a worker thread so
the event loop never blocks) when the process's one poller of open streams saw a change
(`api.services.change_watch`, every `api.services.sse.POLL_S` seconds), and sends what is new:

- `status` — {"id", "status", "progress", "error", "summary", "cancel_requested"}: first,
  and whenever the status changes;
- `epoch` — one stored epoch row {"task", "epoch", "task_epoch", "loss", "val_accuracy",
  "train_s", "eval_s"}, in epoch order;
- `task` — one finished task {"task", "test_accuracy", "fisher_s", "frozen_fraction"},
  after that task's epochs;
- `end` — {"status", "summary", "error"} once the job has finished; then the stream closes.

Each event carries an id "<epoch>.<task>" (the last ones sent); a client reconnecting with
`Last-Event-ID` (EventSource does this) gets only what it has not seen. A comment line is
sent every `api.services.sse.KEEPALIVE_S` seconds so proxies keep the connection open.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from api import parsing
from api.services.sse import Read, format_event, poll_stream, stream_response
from store import updates
from store.models import Experiment


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
    **loop: Any,
) -> AsyncIterator[str]:
    """SSE text for one experiment until its job ends, the client goes away, or `max_s`
    seconds have passed (the client then reconnects with Last-Event-ID and misses nothing;
    a stream is never held open forever by a job that waits for days).

    `loop`: `api.services.sse.poll_stream`'s options (with `watch` the stream reads the
    database only when the shared poller saw a change; without, every `poll_s` seconds)."""
    epoch, task = parse_last_event_id(last_event_id)
    cursor = _Cursor(epoch=epoch, task=task)

    async def read() -> Read:
        events, finished = await run_in_threadpool(poll_once, factory, experiment_id, cursor)
        return Read([format_event(kind, data, cursor.event_id) for kind, data in events], finished)

    async for message in poll_stream(read, experiment_id, **loop):
        yield message


def sse_response(request: Request, experiment_id: int, last_event_id: str | None) -> StreamingResponse:
    """The streaming response of an experiment's events (shared with the dashboard)."""
    return stream_response(
        request, event_stream, experiment_id, last_event_id=last_event_id, watch_name="change_watch"
    )
