"""Plots of a result document (its one shape: docs/architecture.md) as PNG bytes.

Pure functions: a result dict (or sweep points) in, PNG bytes out. Rendered headless with
matplotlib's Agg canvas on a fresh `Figure` (no pyplot global state, so concurrent
requests do not share figures). matplotlib is imported lazily, on the first plot, so the API
process still starts fast. Accuracies arrive as fractions and are drawn as percentages.

`PlotCache` keeps rendered images keyed by what they depend on (experiment id, plot kind,
number of stored rows, status), so a page reload costs nothing and a new epoch re-renders.
"""

from __future__ import annotations

import io
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

#: Image sizes in inches; at DPI 100 a plot is 100 × these pixels.
DPI = 100
MATRIX_SIZE = (6.4, 5.2)
CURVES_SIZE = (8.0, 4.5)
SWEEP_SIZE = (7.2, 4.5)


class NothingToPlot(Exception):
    """The result holds no data for this plot yet (no finished task, no epoch)."""


def _figure(size: tuple[float, float]):
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    return Figure(figsize=size, dpi=DPI, layout="constrained")


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def accuracy_matrix_png(result: Mapping[str, Any], title: str | None = None) -> bytes:
    """The test accuracy matrix as an annotated heatmap, PNG bytes (640 × 520 px).

    Row i = after training task i, column j = accuracy on task j, in percent; rows not
    reached yet (a running job) are left out. Raises `NothingToPlot` when no task finished.
    """
    matrix = [list(row) for row in (result.get("accuracy_matrix") or []) if row]
    if not matrix:
        raise NothingToPlot("no task has finished yet, so there is no accuracy matrix")
    n_cols = max(len(row) for row in matrix)
    values = [[(100.0 * x if x is not None else float("nan")) for x in row] for row in matrix]
    values = [row + [float("nan")] * (n_cols - len(row)) for row in values]

    fig = _figure(MATRIX_SIZE)
    ax = fig.add_subplot()
    image = ax.imshow(values, cmap="viridis", vmin=0, vmax=100, aspect="auto")
    fig.colorbar(image, ax=ax, label="test accuracy (%)")
    ax.set_xticks(range(n_cols), [f"task {j + 1}" for j in range(n_cols)])
    ax.set_yticks(range(len(values)), [f"after {i + 1}" for i in range(len(values))])
    ax.set_xlabel("evaluated on")
    ax.set_ylabel("after training")
    font = 10 if n_cols <= 8 else max(5, 10 - (n_cols - 8) // 2)
    if n_cols <= 20:
        for i, row in enumerate(values):
            for j, v in enumerate(row):
                if not math.isnan(v):
                    ax.text(
                        j, i, f"{v:.1f}", ha="center", va="center", fontsize=font,
                        color="black" if v > 60 else "white",
                        fontweight="bold" if i == j else "normal",
                    )  # fmt: skip
    ax.set_title(title or "Test accuracy (%): row = after task i, column = task j")
    return _png(fig)


def curves_png(result: Mapping[str, Any], title: str | None = None) -> bytes:
    """Validation accuracy of every task over the epochs, PNG bytes (800 × 450 px).

    One line per task (percent against the run's epoch number); dashed vertical lines
    mark where a new task starts. Raises `NothingToPlot` when no epoch is stored yet.
    """
    epochs = list(result.get("epochs") or [])
    if not epochs:
        raise NothingToPlot("no epoch has finished yet, so there are no curves")
    n_tasks = max(len(row.get("val_accuracy") or []) for row in epochs)
    xs = [int(row["epoch"]) for row in epochs]

    fig = _figure(CURVES_SIZE)
    ax = fig.add_subplot()
    for j in range(n_tasks):
        ys = [
            100.0 * row["val_accuracy"][j]
            if j < len(row.get("val_accuracy") or []) and row["val_accuracy"][j] is not None
            else float("nan")
            for row in epochs
        ]
        ax.plot(xs, ys, marker="o", markersize=3, linewidth=1.6, label=f"task {j + 1}")
    previous = None
    for row in epochs:
        if previous is not None and row["task"] != previous["task"]:
            boundary = (int(previous["epoch"]) + int(row["epoch"])) / 2
            ax.axvline(boundary, color="0.5", linestyle="--", linewidth=1)
            ax.text(
                boundary, 101, f" task {row['task']}", fontsize=8, color="0.35",
                va="bottom", ha="left",
            )  # fmt: skip
        previous = row
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_ylim(0, 108)
    ax.set_xlim(min(xs) - 0.5, max(xs) + 0.5)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, alpha=0.3)
    if n_tasks <= 12:
        ax.legend(loc="lower left", fontsize=8, ncols=min(n_tasks, 6))
    ax.set_title(title or "Validation accuracy per task (dashed: a new task starts)")
    return _png(fig)


def sweep_png(
    points: Sequence[Mapping[str, Any]], x_key: str, metric: str = "average_accuracy"
) -> bytes:
    """A sweep's metric against one swept value, mean ± std over seeds, PNG (720 × 450 px).

    `points` are `store.sweeps.point_statistics` rows: `params` (the swept values) and
    `metrics[metric]` = {"mean", "std", "n"}. Points that differ in other swept keys are
    drawn as separate lines. A numeric x on a wide positive range gets a log axis.
    Raises `NothingToPlot` when no point has a finished run.
    """
    series: dict[tuple, list[tuple[Any, float, float]]] = {}
    for point in points:
        stats = (point.get("metrics") or {}).get(metric) or {}
        if stats.get("mean") is None:
            continue
        params = point.get("params") or {}
        others = tuple((k, v) for k, v in sorted(params.items()) if k != x_key)
        series.setdefault(others, []).append(
            (params.get(x_key), 100.0 * stats["mean"], 100.0 * (stats.get("std") or 0.0))
        )
    if not series:
        raise NothingToPlot("no run of this sweep has finished yet")

    fig = _figure(SWEEP_SIZE)
    ax = fig.add_subplot()
    all_x = [x for rows in series.values() for x, _, _ in rows]
    numeric = all(isinstance(x, int | float) and not isinstance(x, bool) for x in all_x)
    labels = sorted({str(x) for x in all_x}) if not numeric else []
    for others, rows in sorted(series.items(), key=lambda kv: str(kv[0])):
        rows = sorted(rows, key=lambda r: r[0] if numeric else str(r[0]))
        xs = [r[0] if numeric else labels.index(str(r[0])) for r in rows]
        label = ", ".join(f"{k}={v}" for k, v in others) or metric
        ax.errorbar(
            xs, [r[1] for r in rows], yerr=[r[2] for r in rows], marker="o", capsize=4,
            linewidth=1.6, label=label,
        )  # fmt: skip
    if numeric and min(all_x) > 0 and max(all_x) / min(all_x) >= 100:
        ax.set_xscale("log")
    if not numeric:
        ax.set_xticks(range(len(labels)), labels)
    ax.set_xlabel(x_key or "grid point")
    ax.set_ylabel(f"{metric.replace('_', ' ')} (%)")
    ax.grid(True, alpha=0.3)
    if len(series) > 1 or any(series.keys()):
        ax.legend(fontsize=8)
    ax.set_title(f"{metric.replace('_', ' ')} against {x_key or 'grid point'} (mean ± std)")
    return _png(fig)


class PlotCache:
    """A small thread-safe LRU of rendered PNGs, keyed by what the image depends on."""

    def __init__(self, max_items: int = 256):
        self._items: OrderedDict[Hashable, bytes] = OrderedDict()
        self._lock = threading.Lock()
        self.max_items = max_items
        self.hits = 0
        self.misses = 0

    def get_or_render(self, key: Hashable, render: Callable[[], bytes]) -> bytes:
        """The cached image for `key`, rendering (and storing) it on a miss.

        `NothingToPlot` from `render` propagates and nothing is stored.
        """
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                self.hits += 1
                return self._items[key]
        png = render()
        with self._lock:
            self.misses += 1
            self._items[key] = png
            self._items.move_to_end(key)
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)
        return png
