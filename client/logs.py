"""A job's log lines: `logs`, `log_text`, `follow_logs`.

Mixed into `client.http.Client`: methods here call `self.send`, `self.request` and
`self._model` as the rest of the client does.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx

from client.events import READ_TIMEOUT_S, Event, StreamUnavailable, iter_sse
from common.schemas_logs import LogLineOut, LogPage

#: Stream failures in a row (no line between them) after which `follow_logs` polls instead.
STREAM_FAILURES = 3


def stream_log_events(http: httpx.Client, experiment_id: int, after: int) -> Iterator[Event]:
    """The job's log as server-sent events after line `after`, until `end` or the server
    closes the stream (it bounds a stream's life); `StreamUnavailable` when it fails."""
    headers = {"Accept": "text/event-stream", "Last-Event-ID": str(after)}
    timeout = httpx.Timeout(10.0, read=READ_TIMEOUT_S)
    path = f"/v1/experiments/{experiment_id}/logs"
    try:
        with http.stream(
            "GET", path, params={"follow": "true"}, headers=headers, timeout=timeout
        ) as resp:
            if resp.status_code != 200 or not resp.headers.get("content-type", "").startswith(
                "text/event-stream"
            ):
                raise StreamUnavailable(f"logs: HTTP {resp.status_code}")
            yield from iter_sse(resp.iter_lines())
    except httpx.HTTPError as exc:
        raise StreamUnavailable(str(exc)) from exc


class LogsMixin:
    """The client's logs calls."""

    http: httpx.Client

    def logs(
        self, experiment_id: int, after: int | None = None, limit: int | None = None
    ) -> LogPage:
        """A page of the job's log: up to `limit` lines (the server's default 1000) after
        line `after`; `next_after` continues it, `finished` says nothing more will come."""
        params = {k: v for k, v in {"after": after, "limit": limit}.items() if v is not None}
        return self._model(LogPage, "GET", f"/v1/experiments/{experiment_id}/logs", params=params)  # type: ignore[attr-defined]

    def log_text(self, experiment_id: int) -> str:
        """The whole log as text, one `<time> <level> [attempt n] <message>` per line."""
        resp = self.send("GET", f"/v1/experiments/{experiment_id}/logs", params={"format": "text"})  # type: ignore[attr-defined]
        return resp.text

    def follow_logs(
        self, experiment_id: int, after: int | None = None, *, poll_s: float = 1.0
    ) -> Iterator[LogLineOut]:
        """Every line of the job's log after `after` as it is stored, until the job has
        ended and its log is complete. Follows the server's event stream, reconnecting
        with the last line's id when a stream closes; polls every `poll_s` seconds where
        no stream can be had (an `ApiError` such as a 404 is raised from the poll)."""
        last = after or 0
        failures = 0
        while True:
            if failures < STREAM_FAILURES:
                failures += 1  # until the stream gives a line
                try:
                    for event in stream_log_events(self.http, experiment_id, last):
                        if event.event == "end":
                            return
                        if event.event == "line":
                            line = LogLineOut.model_validate(event.data)
                            last, failures = line.id, 0
                            yield line
                    continue  # the server closed the stream (its lifetime): reconnect
                except StreamUnavailable:
                    pass
            page: Any = self.logs(experiment_id, after=last)
            yield from page.lines
            last = page.next_after
            if page.finished:
                return
            if not page.lines:
                time.sleep(poll_s)
