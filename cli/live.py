"""Live progress and plots on the command line: a rich progress bar driven by the event
stream (`client.events`, server-sent events), and a plot PNG saved to a file.

Used by `ewc submit --wait` (through `jobs.wait_for`) and `ewc results --plot`. No
TensorFlow, no server code: the Python client (and the plot kinds, from `api.vocabulary`,
which imports nothing).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from api.vocabulary import PLOT_KINDS
from client.events import (  # noqa: F401 - iter_sse, READ_TIMEOUT_S: this module's old names
    READ_TIMEOUT_S,
    StreamUnavailable,
    iter_sse,
    stream_events,
)

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from cli.client import Client


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
    return client.get(experiment_id).model_dump(mode="json")


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

    The client's error (e.g. 409: nothing to plot yet) says why when there is none.
    """
    png = client.plot(experiment_id, kind)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png)
    return len(png)
