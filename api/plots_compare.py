"""Overlay plots of several runs on shared axes, as PNG bytes: what `GET
/v1/experiments/compare/plot.png` draws.

Pure functions like `api.plots` (whose headless figure they share): `Run`s in, PNG bytes
out. Accuracies arrive as fractions and are drawn as percentages.

- `accuracy`: every task's validation accuracy per epoch; one colour per run, one line
  style per task, two legends (runs, tasks);
- `average`: the average accuracy per epoch: the mean validation accuracy over the tasks
  seen so far (tasks 1..k while training task k), so after the last task it is the mean
  over all tasks, the definition of `continual_core.metrics.average_accuracy`; markers:
  the same mean of the test accuracy matrix after each task (R[k][0..k]; the last one is
  the run's summary `average_accuracy`);
- `loss`: the training loss per epoch (a log axis when it spans two decades);
- `diff`: B − A of two test accuracy matrices (percentage points), an annotated heatmap
  with a diverging colour map centred at 0.

Runs of different task counts share the curves' axes; `diff` refuses them (`Mismatch`).
Dashed vertical lines mark where a task starts when every run starts its tasks at the
same epochs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from api.plots import NothingToPlot, _figure, _png
from api.vocabulary import COMPARE_PLOT_KINDS as COMPARE_KINDS

OVERLAY_SIZE = (9.6, 5.4)
DIFF_SIZE = (7.2, 5.6)
#: Line styles of tasks 1, 2, ... (then again, with markers to tell them apart).
TASK_STYLES = ("-", "--", ":", "-.")
TASK_MARKERS = (None, "o", "s", "^", "v", "D")


class Mismatch(ValueError):
    """The runs cannot be drawn together in this plot (the message says why)."""


@dataclass(frozen=True)
class Run:
    """One run to draw: its legend label and its result document (docs/architecture.md)."""

    label: str
    result: Mapping[str, Any]

    @property
    def epochs(self) -> list[Mapping[str, Any]]:
        return list(self.result.get("epochs") or [])

    @property
    def matrix(self) -> list[list[float | None]]:
        return [list(r) for r in (self.result.get("accuracy_matrix") or []) if r]


def _pct(x: float | None) -> float:
    return float("nan") if x is None else 100.0 * float(x)


def seen_average(row: Mapping[str, Any]) -> float | None:
    """The mean validation accuracy over the tasks seen so far (1..row["task"]) of one
    epoch row, a fraction; None when none of them has a value."""
    values = [v for v in (row.get("val_accuracy") or [])[: int(row["task"])] if v is not None]
    return sum(values) / len(values) if values else None


def matrix_averages(matrix: Sequence[Sequence[float | None]]) -> list[float | None]:
    """Row k of the test accuracy matrix averaged over tasks 1..k+1: the average accuracy
    after each task (the last is `continual_core.metrics.average_accuracy` of a finished
    run's matrix)."""
    out: list[float | None] = []
    for k, row in enumerate(matrix):
        values = [v for v in row[: k + 1] if v is not None]
        out.append(sum(values) / len(values) if values else None)
    return out


def _colours(n: int) -> list:
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _task_starts(run: Run) -> tuple[int, ...]:
    """The epochs at which a task after the first starts."""
    starts, previous = [], None
    for row in run.epochs:
        if previous is not None and row["task"] != previous:
            starts.append(int(row["epoch"]))
        previous = row["task"]
    return tuple(starts)


def _axes(runs: Sequence[Run], ylabel: str, title: str):
    """A figure with one axes, the task boundaries of `runs` drawn when they agree."""
    drawn = [r for r in runs if r.epochs]
    if not drawn:
        raise NothingToPlot("none of these experiments has finished an epoch yet")
    fig = _figure(OVERLAY_SIZE)
    ax = fig.add_subplot()
    boundaries = {_task_starts(r) for r in drawn}
    if len(boundaries) == 1:
        for epoch in boundaries.pop():
            ax.axvline(epoch - 0.5, color="0.6", linestyle="--", linewidth=0.9, zorder=0)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.set_title(title)
    return fig, ax


def _run_legend(ax, runs: Sequence[Run], colours, **kwargs):
    from matplotlib.lines import Line2D

    handles = [
        Line2D(
            [], [], color=c, linewidth=2.2, label=r.label + ("" if r.epochs else " (no epoch yet)")
        )
        for r, c in zip(runs, colours, strict=True)
    ]
    return ax.legend(handles=handles, fontsize=8, title="run", title_fontsize=8, **kwargs)


def accuracy_figure(runs: Sequence[Run]):
    """Validation accuracy of every task per epoch, all runs on one axes (960 × 540 px)."""
    fig, ax = _axes(runs, "validation accuracy (%)", "Validation accuracy per task "
                    "(colour: run, line style: task; dashed: a new task starts)")  # fmt: skip
    colours = _colours(len(runs))
    n_tasks = max((len(e.get("val_accuracy") or []) for r in runs for e in r.epochs), default=0)
    for run, colour in zip(runs, colours, strict=True):
        xs = [int(e["epoch"]) for e in run.epochs]
        for j in range(n_tasks):
            ys = [_pct((e.get("val_accuracy") or [])[j])
                  if j < len(e.get("val_accuracy") or []) else float("nan") for e in run.epochs]  # fmt: skip
            if all(math.isnan(y) for y in ys):
                continue
            ax.plot(xs, ys, color=colour, linestyle=TASK_STYLES[j % len(TASK_STYLES)],
                    marker=TASK_MARKERS[(j // len(TASK_STYLES)) % len(TASK_MARKERS)],
                    markersize=3, linewidth=1.5)  # fmt: skip
    ax.set_ylim(0, 102)
    runs_legend = _run_legend(ax, runs, colours, loc="lower left")
    ax.add_artist(runs_legend)
    if n_tasks <= 12:
        from matplotlib.lines import Line2D

        styles = [
            Line2D([], [], color="0.25", linestyle=TASK_STYLES[j % len(TASK_STYLES)],
                   marker=TASK_MARKERS[(j // len(TASK_STYLES)) % len(TASK_MARKERS)],
                   markersize=3, label=f"task {j + 1}")
            for j in range(n_tasks)
        ]  # fmt: skip
        ax.legend(handles=styles, fontsize=8, loc="lower right", title="task", title_fontsize=8,
                  ncols=1 if n_tasks <= 6 else 2)  # fmt: skip
    return fig


def average_figure(runs: Sequence[Run]):
    """Average accuracy over the tasks seen so far, per epoch (lines, validation sets) and
    after each task (markers, test sets), all runs on one axes (960 × 540 px)."""
    fig, ax = _axes(runs, "average accuracy over the tasks seen (%)",
                    "Average accuracy over the tasks seen so far (line: validation per epoch, "
                    "◆: test after each task)")  # fmt: skip
    colours = _colours(len(runs))
    for run, colour in zip(runs, colours, strict=True):
        epochs = run.epochs
        ax.plot([int(e["epoch"]) for e in epochs], [_pct(seen_average(e)) for e in epochs],
                color=colour, linewidth=1.8, marker="o", markersize=2.5)  # fmt: skip
        last_epoch = {int(e["task"]): int(e["epoch"]) for e in epochs}
        points = [(last_epoch[k + 1], _pct(v)) for k, v in enumerate(matrix_averages(run.matrix))
                  if k + 1 in last_epoch and v is not None]  # fmt: skip
        if points:
            ax.plot(*zip(*points, strict=True), linestyle="none", marker="D", markersize=7,
                    color=colour, markeredgecolor="black", markeredgewidth=0.6)  # fmt: skip
    ax.set_ylim(0, 102)
    _run_legend(ax, runs, colours, loc="lower left")
    return fig


def loss_figure(runs: Sequence[Run]):
    """Training loss per epoch (with the methods' penalties), all runs (960 × 540 px)."""
    fig, ax = _axes(runs, "training loss", "Training loss per epoch (dashed: a new task starts)")
    colours = _colours(len(runs))
    losses = []
    for run, colour in zip(runs, colours, strict=True):
        ys = [float(e["loss"]) if e.get("loss") is not None else float("nan") for e in run.epochs]
        losses += [y for y in ys if math.isfinite(y)]
        ax.plot([int(e["epoch"]) for e in run.epochs], ys, color=colour, linewidth=1.8,
                marker="o", markersize=2.5)  # fmt: skip
    if losses and min(losses) > 0 and max(losses) / min(losses) >= 100:
        ax.set_yscale("log")
    _run_legend(ax, runs, colours, loc="upper right")
    return fig


def diff_figure(a: Run, b: Run):
    """B − A of the test accuracy matrices in percentage points, annotated, on a diverging
    colour map centred at 0 (blue: B better, red: A better) (720 × 560 px).

    Rows present in both are drawn (a running job has fewer). Raises `Mismatch` when the
    task counts differ, `NothingToPlot` when one has no finished task.
    """
    ma, mb = a.matrix, b.matrix
    tasks_a, tasks_b = (max((len(r) for r in m), default=0) for m in (ma, mb))
    if ma and mb and tasks_a != tasks_b:
        raise Mismatch(f"{a.label} has {tasks_a} tasks and {b.label} {tasks_b}; only "
                       "accuracy matrices of the same task count can be subtracted")  # fmt: skip
    if not ma or not mb:
        who = ", ".join(r.label for r, m in ((a, ma), (b, mb)) if not m)
        raise NothingToPlot(f"no task has finished yet in {who}, so there is no accuracy matrix")
    rows = min(len(ma), len(mb))
    values = [
        [_pct(mb[i][j]) - _pct(ma[i][j]) if j < len(ma[i]) and j < len(mb[i]) else float("nan")
         for j in range(tasks_a)]
        for i in range(rows)
    ]  # fmt: skip
    finite = [abs(v) for row in values for v in row if not math.isnan(v)]
    span = max([1.0, *finite])
    fig = _figure(DIFF_SIZE)
    ax = fig.add_subplot()
    image = ax.imshow(values, cmap="RdBu", vmin=-span, vmax=span, aspect="auto")
    fig.colorbar(image, ax=ax, label="B − A (percentage points; blue: B better)")
    ax.set_xticks(range(tasks_a), [f"task {j + 1}" for j in range(tasks_a)])
    ax.set_yticks(range(rows), [f"after {i + 1}" for i in range(rows)])
    ax.set_xlabel("evaluated on")
    ax.set_ylabel("after training")
    if tasks_a <= 20:
        font = 10 if tasks_a <= 8 else max(5, 10 - (tasks_a - 8) // 2)
        for i, row in enumerate(values):
            for j, v in enumerate(row):
                if not math.isnan(v):
                    ax.text(j, i, f"{v:+.1f}", ha="center", va="center", fontsize=font,
                            color="white" if abs(v) > 0.6 * span else "black",
                            fontweight="bold" if i == j else "normal")  # fmt: skip
    avg_a, avg_b = matrix_averages(ma[:rows])[-1], matrix_averages(mb[:rows])[-1]
    delta = (
        ""
        if avg_a is None or avg_b is None
        else (f"\naverage accuracy after task {rows}: {_pct(avg_b) - _pct(avg_a):+.1f} pp")
    )
    ax.set_title(f"Test accuracy, B − A (pp)\nB = {b.label}\nA = {a.label}{delta}", fontsize=9)
    return fig


def compare_figure(kind: str, runs: Sequence[Run]):
    """The matplotlib figure of `kind` (one of `COMPARE_KINDS`) for `runs` (legend order)."""
    if kind == "diff":
        if len(runs) != 2:
            raise Mismatch(f"kind=diff compares exactly two experiments (drawn as B − A, "
                           f"the second minus the first); got {len(runs)}")  # fmt: skip
        return diff_figure(runs[0], runs[1])
    draw = {"accuracy": accuracy_figure, "average": average_figure, "loss": loss_figure}.get(kind)
    if draw is None:
        raise Mismatch(f"kind must be one of {', '.join(COMPARE_KINDS)}, not {kind!r}")
    return draw(runs)


def compare_png(kind: str, runs: Sequence[Run]) -> bytes:
    """`compare_figure` as PNG bytes: 960 × 540 px, `diff` 720 × 560 px."""
    return _png(compare_figure(kind, runs))
