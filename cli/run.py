"""`ewc run`: train here with the original project's flags.

Prints the original's per-epoch table (epoch, task, loss, validation accuracy on every
task) as each epoch ends, then the test accuracy matrix and the summary. With `--json` the
human output goes to stderr and the LAST line of stdout is the one JSON result object.

TensorFlow is imported only when the command runs, so `ewc --help` stays fast. This is the
edge of the core: it may read the environment (`EWC_DATASET_CACHE`, `EWC_DATA_DIR`) to find
the dataset folder; `train()` itself never does.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from cli import flags as F
from cli.report import epoch_cells, matrix_table, summary_table
from continual_core.events import (
    Callback,
    EpochEnd,
    RunStart,
    StopRequested,
    TaskEnd,
    TrainingDiverged,
)

AsJson = Annotated[
    bool, typer.Option("--json", help="End stdout with one line: the JSON result (tables go to stderr).")
]
DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Dataset folder (mnist.npz, cifar-10-batches-py/, ...). Default: "
        "$EWC_DATASET_CACHE, else $EWC_DATA_DIR/datasets, else ./data/datasets.",
        show_default=False,
    ),
]
CheckpointDir = Annotated[
    Path | None,
    typer.Option(
        "--checkpoint-dir",
        help="Write a checkpoint after every task (and model.keras at the end) here; a run "
        "pointed at a folder with checkpoints resumes after the latest one.",
        show_default=False,
    ),
]


def default_dataset_dir() -> Path:
    """The settings' dataset cache: $EWC_DATASET_CACHE, else $EWC_DATA_DIR/datasets."""
    from common.settings import get_settings

    return get_settings().resolved_dataset_cache()


class LiveTable(Callback):
    """Prints one row of the original's per-epoch table as each epoch ends."""

    def __init__(self, console: Console):
        self.console, self.num_tasks = console, 1

    def on_run_start(self, event: RunStart) -> None:
        self.num_tasks = event.num_tasks
        if event.first_task > 1:
            self.console.print(f"resuming after task {event.first_task - 1} (checkpoint found)")
        header = ["epoch", "task", "loss", *(f"task {j + 1}" for j in range(self.num_tasks))]
        self.console.print("Validation accuracy (%) after each epoch")
        self.console.print(_row(header), style="bold")

    def on_epoch_end(self, event: EpochEnd) -> None:
        self.console.print(_row(epoch_cells(event.as_dict(), self.num_tasks)))

    def on_task_end(self, event: TaskEnd) -> None:
        extra = f", Fisher {event.fisher_s:.3f} s" if event.fisher_s is not None else ""
        if event.frozen_fraction is not None:
            extra += f", {100 * event.frozen_fraction:.1f} % of weights frozen"
        acc = " ".join(f"{100 * a:.1f}" for a in event.test_accuracy)
        self.console.print(f"task {event.task} done: test accuracy {acc}{extra}", style="dim")


def _row(cells: list[str]) -> str:
    return "".join(c.rjust(8) for c in cells)


@F.with_spec_flags
def run(
    flags: F.SpecFlags,
    spec_file: F.SpecFile = None,
    as_json: AsJson = False,
    data_dir: DataDir = None,
    checkpoint_dir: CheckpointDir = None,
) -> None:
    """Train locally with the original project's flags and print the results."""
    spec = flags.to_spec(spec_file=spec_file)  # typer.BadParameter names the flag → exit 2
    console = Console(stderr=as_json, highlight=False)
    errors = Console(stderr=True, highlight=False)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from continual_core.checkpoint import CheckpointMismatch
    from continual_core.datasets import DatasetUnavailable
    from continual_core.trainer import train

    try:
        result = train(
            spec,
            dataset_cache=data_dir or default_dataset_dir(),
            callback=LiveTable(console),
            checkpoint_dir=checkpoint_dir,
        )
    except (DatasetUnavailable, CheckpointMismatch, TrainingDiverged) as exc:
        errors.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    except (StopRequested, KeyboardInterrupt):
        errors.print("[yellow]stopped[/yellow]")
        raise typer.Exit(130) from None
    console.print(matrix_table(result["accuracy_matrix"], spec.num_tasks))
    console.print(summary_table(result["summary"]))
    console.print(_timings_table(result))
    if as_json:
        print(json.dumps(result), flush=True)


def _timings_table(result: dict) -> Table:
    t = result["timings"]
    table = Table(title="Timings (s)", title_justify="left", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")

    def mean(xs: list[float]) -> str:
        return f"{sum(xs) / len(xs):.3f}" if xs else "–"

    table.add_row("train per epoch (mean)", mean(t["train_epoch_s"]))
    table.add_row("validation per epoch (mean)", mean(t["eval_s"]))
    table.add_row("Fisher per task (mean)", mean(t["fisher_s"]))
    table.add_row("total", f"{t['total_s']:.2f}")
    table.add_row("device", str(result.get("device")))
    return table
