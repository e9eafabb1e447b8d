"""A job's captured log (`store.logs`), as the API gives it: a page of JSON, the whole log as
text, or a stream of server-sent events that follows the job until its log is complete.

The stream reads the database only when the process's shared poller saw its job's mark
change (its status or its newest line: `api.services.change_watch` with
`store.logs.marks`), and sends

- `line` — one line {"id", "attempt", "level", "time", "message"}, its id the line's id;
- `end` — {"status"} once the job has finished and its log is complete; then it closes.

A client reconnecting with `Last-Event-ID` (or `after`) gets only the lines after it. A
stream lasts at most `EWC_EVENTS_MAX_S` seconds (the client reconnects); a comment is sent
every `api.services.sse.KEEPALIVE_S` seconds so proxies keep it open.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from fastapi.responses import PlainTextResponse, Response, StreamingResponse
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from api.errors import SpecProblems
from api.services.sse import Read, format_event, poll_stream, stream_response
from common.schemas_logs import LogLineOut, LogPage
from store import experiments, logs
from store.models import Experiment
from store.records import ExperimentLog

#: Lines one page (or one read of a stream) holds at most.
PAGE_MAX = 5000
#: Lines of a page when `limit` is not given.
PAGE_DEFAULT = 1000


def line_out(row: ExperimentLog) -> LogLineOut:
    return LogLineOut(
        id=row.id, attempt=row.attempt, level=row.level, time=row.created_at, message=row.message
    )


def read_page(session: Session, experiment: Experiment, after: int, limit: int) -> LogPage:
    """The lines after `after`, and whether they end the log. Completeness is read before
    the lines: a log seen complete has all its lines committed, so none is missed."""
    complete = logs.is_complete(session, experiment)
    rows = logs.read_lines(session, experiment.id, after, limit)
    return LogPage(
        lines=[line_out(r) for r in rows],
        next_after=rows[-1].id if rows else after,
        finished=complete and len(rows) < limit,
    )


def text_response(session: Session, experiment: Experiment, after: int) -> PlainTextResponse:
    """The whole log (after `after`) as text/plain, one line per line (bounded by the
    worker's cap, so read at once)."""
    parts: list[str] = []
    while True:
        rows = logs.read_lines(session, experiment.id, after, PAGE_MAX)
        parts.extend(line_out(r).text() + "\n" for r in rows)
        if len(rows) < PAGE_MAX:
            break
        after = rows[-1].id
    return PlainTextResponse(
        "".join(parts),
        headers={"Content-Disposition": f'inline; filename="experiment-{experiment.id}.log"'},
    )


def parse_after(value: str | None) -> int | None:
    """A Last-Event-ID as a line id (None when absent or not a plain ASCII number)."""
    if value is None or not value.isascii() or not value.isdigit() or len(value) > 12:
        return None
    return int(value)


def poll_once(
    factory: sessionmaker[Session], experiment_id: int, after: int
) -> tuple[list[LogLineOut], str | None]:
    """The lines after `after` and, when the log is complete with them, the job's status."""
    with factory() as session:
        try:
            exp = experiments.get_experiment(session, experiment_id)
        except experiments.ExperimentNotFound:
            return [], "deleted"
        page = read_page(session, exp, after, PAGE_MAX)
        return page.lines, exp.status.value if page.finished else None


async def log_stream(
    factory: sessionmaker[Session], experiment_id: int, *, after: int = 0, **loop: Any
) -> AsyncIterator[str]:
    """SSE text of the job's log lines after `after`, until the log is complete, the client
    goes away, or `max_s` seconds have passed (see the module; `loop`:
    `api.services.sse.poll_stream`'s options)."""
    last = after

    async def read() -> Read:
        nonlocal last
        lines, ended = await run_in_threadpool(poll_once, factory, experiment_id, last)
        messages = []
        for line in lines:
            last = line.id
            messages.append(format_event("line", line.model_dump(mode="json"), str(line.id)))
        if ended is not None:
            messages.append(format_event("end", {"status": ended}, str(last)))
        return Read(messages, done=ended is not None, more=len(lines) == PAGE_MAX)

    async for message in poll_stream(read, experiment_id, **loop):
        yield message


def sse_response(request: Request, experiment_id: int, after: int) -> StreamingResponse:
    """The streaming response of a job's log (shared with the dashboard)."""
    return stream_response(
        request, log_stream, experiment_id, after=after, watch_name="log_watch", marks=logs.marks
    )


def answer(
    request: Request,
    session: Session,
    experiment: Experiment,
    *,
    after: int = 0,
    limit: int = PAGE_DEFAULT,
    follow: bool = False,
    text: bool = False,
) -> LogPage | Response:
    """The answer of a logs route (the v1 one and the dashboard's): the text, the stream
    (`follow`, or `Accept: text/event-stream`; resumed after `Last-Event-ID`), or a page."""
    if text:
        if follow:
            raise SpecProblems(
                [("format", "format=text is the whole log at once; follow=true streams events")]
            )
        return text_response(session, experiment, after)
    if follow or "text/event-stream" in request.headers.get("accept", ""):
        resumed = parse_after(request.headers.get("last-event-id"))
        # End the request's transaction now: the stream may last hours, and on SQLite an
        # open transaction holds the write lock the worker needs.
        session.commit()
        return sse_response(request, experiment.id, max(after, resumed or 0))
    return read_page(session, experiment, after, limit)


def page_context(
    session: Session, experiment: Experiment, limit: int = PAGE_DEFAULT
) -> dict[str, Any]:
    """The experiment page's Logs section: its last `limit` lines (and whether older ones
    were left out), the id to follow from, and whether to follow."""
    shown = [line_out(r) for r in logs.last_lines(session, experiment.id, limit)]
    total = logs.count(session, experiment.id).lines if len(shown) == limit else len(shown)
    return {
        "log_lines": shown,
        "log_older": total - len(shown),
        "log_after": shown[-1].id if shown else 0,
        "log_follow": not logs.is_complete(session, experiment),
    }
