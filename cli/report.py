"""Rich renderings of a result (its one shape: docs/architecture.md): the original's
per-epoch table, the test accuracy matrix and the summary.

Shared by `ewc run` (local training) and `ewc results` (a stored experiment). TF-free.
Accuracies arrive as fractions and are shown as percentages, like the original.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.table import Table


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def epoch_table(epochs: Sequence[Mapping[str, Any]], num_tasks: int) -> Table:
    """The original's per-epoch table: epoch, task, loss, validation accuracy (%) per task."""
    table = Table(title="Validation accuracy (%) after each epoch", title_justify="left")
    table.add_column("epoch", justify="right")
    table.add_column("task", justify="right")
    table.add_column("loss", justify="right")
    for j in range(num_tasks):
        table.add_column(f"task {j + 1}", justify="right")
    for row in epochs:
        table.add_row(*epoch_cells(row, num_tasks))
    return table


def epoch_cells(row: Mapping[str, Any], num_tasks: int) -> list[str]:
    """One epoch row as table cells (used for the live table too)."""
    acc = list(row.get("val_accuracy") or [])
    acc += [None] * (num_tasks - len(acc))
    return [str(row["epoch"]), str(row["task"]), f"{row['loss']:.4f}", *map(_pct, acc)]


def matrix_table(matrix: Sequence[Sequence[float]], num_tasks: int | None = None) -> Table:
    """The test accuracy matrix: row i = after training task i, column j = task j (%)."""
    n = num_tasks or (len(matrix[0]) if matrix else 0)
    table = Table(
        title="Test accuracy (%) — row: after training task i, column: task j",
        title_justify="left",
    )
    table.add_column("after", justify="right")
    for j in range(n):
        table.add_column(f"task {j + 1}", justify="right")
    for i, row in enumerate(matrix):
        cells = [_pct(x) for x in row]
        if i < len(cells):
            cells[i] = f"[bold]{cells[i]}[/bold]"
        table.add_row(f"task {i + 1}", *cells)
    return table


def summary_table(summary: Mapping[str, Any] | None) -> Table:
    """Average accuracy, backward transfer, forward transfer and forgetting (%)."""
    table = Table(title="Summary", title_justify="left", show_header=False)
    table.add_column("metric")
    table.add_column("value", justify="right")
    summary = summary or {}
    for key, label in (
        ("average_accuracy", "average accuracy (%)"),
        ("bwt", "backward transfer (%)"),
        ("fwt", "forward transfer (%)"),
        ("forgetting", "forgetting (%)"),
    ):
        if key in summary:
            table.add_row(label, _pct(summary[key]))
    return table


def result_renderables(result: Mapping[str, Any]) -> list[Table]:
    """Every table of a result, in reading order."""
    matrix = result.get("accuracy_matrix") or []
    spec = result.get("spec") or {}
    n = len(matrix[0]) if matrix else (spec.get("splits") or 1)
    if spec.get("dataset_update") == "full":
        n = 1
    tables = [epoch_table(result.get("epochs") or [], n)]
    if matrix:
        tables.append(matrix_table(matrix, n))
    if result.get("summary"):
        tables.append(summary_table(result["summary"]))
    return tables
