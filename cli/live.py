"""Client side of live progress and plots: follow `GET /v1/experiments/{id}/events`
(server-sent events) with httpx streaming, and save a plot PNG to a file.

Used by `ewc submit --wait` (through `jobs.wait_for`), `ewc sweep --wait` and
`ewc results --plot`. No TensorFlow, no server code: only httpx (and the plot kinds,
from `api.vocabulary`, which imports nothing).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from api.vocabulary import PLOT_KINDS

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from cli.client import Client

#: Seconds without a byte (the server sends a keep-alive every 15 s) before giving up.
READ_TIMEOUT_S = 60.0


class StreamUnavailable(Exception):
    """The events stream could not be used (old server, proxy, network); poll instead."""


def iter_sse(lines: Iterator[str]) -> Iterator[tuple[str, Any]]:
    """(event, data) per server-sent event in `lines`; `data` is parsed JSON when it parses."""
    event, data = "message", []
    for line in lines:
        if line == "":
            if data:
                text = "\n".join(data)
                try:
                    yield event, json.loads(text)
                except ValueError:
                    yield event, text
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


def stream_events(http: httpx.Client, experiment_id: int) -> Iterator[tuple[str, Any]]:
    """The experiment's events until `end`; raises `StreamUnavailable` if the stream fails."""
    timeout = httpx.Timeout(10.0, read=READ_TIMEOUT_S)
    try:
        with http.stream(
            "GET", f"/v1/experiments/{experiment_id}/events", timeout=timeout,
            headers={"Accept": "text/event-stream"},
        ) as resp:  # fmt: skip
            if resp.status_code != 200 or not resp.headers.get("content-type", "").startswith(
                "text/event-stream"
            ):
                raise StreamUnavailable(f"events: HTTP {resp.status_code}")
            for event, data in iter_sse(resp.iter_lines()):
                yield event, data
                if event == "end":
                    return
    except httpx.HTTPError as exc:
        raise StreamUnavailable(str(exc)) from exc
    raise StreamUnavailable("the stream closed before the job ended")


def follow_events(
    client: Client, experiment_id: int, progress: Progress, bar: TaskID
) -> dict | None:
    """Drive a rich progress bar from the events; the final experiment document, or None
    when the stream is unavailable (the caller then polls)."""
    state: dict[str, Any] = {"status": "queued", "epoch": 0, "total": None, "task": 0, "n": 0}

    def show(acc: str = "") -> None:
        total = state["total"]
        progress.update(
            bar,
            description=f"{state['status']:<9} task {state['task']}/{state['n']} "
            f"epoch {state['epoch']}/{total or 0}",
            total=total or None,
            completed=state["epoch"],
            acc=acc,
        )

    try:
        for event, data in stream_events(client.http, experiment_id):
            if event == "status":
                p = data.get("progress") or {}
                state.update(status=data["status"], total=p.get("total_epochs"),
                             n=p.get("num_tasks", 0), task=p.get("task", 0),
                             epoch=p.get("epoch", 0))  # fmt: skip
                show()
            elif event == "epoch":
                state.update(epoch=data["epoch"], task=data["task"], status="running")
                show("val " + " ".join(f"{100 * a:.1f}" for a in data["val_accuracy"]))
            elif event == "end":
                break
    except StreamUnavailable:
        return None
    return client.request("GET", f"/v1/experiments/{experiment_id}")


def plot_kind_for(path: Path, kind: str | None) -> str:
    """The plot to fetch: `kind` if given, else from the file name ("matrix" → the
    accuracy matrix, otherwise the curves)."""
    if kind:
        if kind not in PLOT_KINDS:
            raise ValueError(f"--plot-kind must be one of {', '.join(PLOT_KINDS)}, not {kind!r}")
        return kind
    return "accuracy-matrix" if "matrix" in path.name.lower() else "curves"


def save_plot(client: Client, experiment_id: int, path: Path, kind: str) -> int:
    """Download the experiment's `kind` plot to `path` (PNG); returns its size in bytes.

    Raises `RuntimeError` with the server's explanation (e.g. nothing to plot yet).
    """
    try:
        resp = client.http.get(f"/v1/experiments/{experiment_id}/plots/{kind}.png")
    except httpx.HTTPError as exc:
        raise RuntimeError(f"cannot reach {client.http.base_url}: {exc}") from None
    if resp.status_code != 200:
        try:
            detail = resp.json().get("detail")
        except ValueError:
            detail = resp.text[:300]
        raise RuntimeError(f"{resp.status_code} {resp.reason_phrase}: {detail}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(resp.content)
    return len(resp.content)
