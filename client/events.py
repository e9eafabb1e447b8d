"""Server-sent events (`GET /v1/experiments/{id}/events`), read with httpx streaming.

`iter_sse` parses the text protocol; `stream_events` yields an experiment's `Event`s until
`end`, and raises `StreamUnavailable` when the stream cannot be used (an old server, a
proxy, the network), so the caller can poll instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, NamedTuple

import httpx

#: Seconds without a byte (the server sends a keep-alive every 15 s) before giving up.
READ_TIMEOUT_S = 60.0


class Event(NamedTuple):
    """One event: its name (`status`, `epoch`, `task`, `end`) and data (parsed JSON)."""

    event: str
    data: Any


class StreamUnavailable(Exception):
    """The events stream could not be used (old server, proxy, network); poll instead."""


def iter_sse(lines: Iterator[str]) -> Iterator[Event]:
    """An `Event` per server-sent event in `lines`; `data` is parsed JSON when it parses."""
    event, data = "message", []
    for line in lines:
        if line == "":
            if data:
                text = "\n".join(data)
                try:
                    yield Event(event, json.loads(text))
                except ValueError:
                    yield Event(event, text)
            event, data = "message", []
        elif line.startswith(":"):
            continue
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)


def stream_events(
    http: httpx.Client, experiment_id: int, last_event_id: str | None = None
) -> Iterator[Event]:
    """The experiment's events until `end`; raises `StreamUnavailable` if the stream fails."""
    timeout = httpx.Timeout(10.0, read=READ_TIMEOUT_S)
    headers = {"Accept": "text/event-stream"}
    if last_event_id:
        headers["Last-Event-ID"] = last_event_id
    try:
        with http.stream(
            "GET", f"/v1/experiments/{experiment_id}/events", timeout=timeout, headers=headers
        ) as resp:
            if resp.status_code != 200 or not resp.headers.get("content-type", "").startswith(
                "text/event-stream"
            ):
                raise StreamUnavailable(f"events: HTTP {resp.status_code}")
            for item in iter_sse(resp.iter_lines()):
                yield item
                if item.event == "end":
                    return
    except httpx.HTTPError as exc:
        raise StreamUnavailable(str(exc)) from exc
    raise StreamUnavailable("the stream closed before the job ended")
