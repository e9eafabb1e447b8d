"""TensorBoard event files for a job, written by the worker as the metrics happen.

`TensorBoardCallback` is a `continual_core.events.Callback`: per epoch it writes the loss
and the validation accuracy of every task (step = the run's epoch number), per finished
task the row of the test accuracy matrix and the frozen fraction (step = the task number).
View with

    tensorboard --logdir <artifacts_dir>/experiments/<id>/tensorboard

It uses `tf.summary.write` (no tensorboard package needed) and so lives in the worker (the API never imports TensorFlow).
Writing is best effort: a failure (disk full, read-only folder) is logged once and the
callback goes quiet; it never fails the job. Accuracies are fractions in [0, 1].
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from continual_core.events import Callback, CallbackList, EpochEnd, RunStart, TaskEnd

log = logging.getLogger("ewc.worker")

#: Sub-folder of an experiment's artifacts that holds its event files.
TENSORBOARD_DIR = "tensorboard"


def _scalar_metadata() -> bytes:
    """What TensorBoard's scalar plugin expects of a scalar (as `tensorboard.summary.v2.scalar`
    writes it); `tf.summary.scalar` itself needs the tensorboard package, which a worker
    need not have."""
    from tensorflow.core.framework import summary_pb2

    return summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"),
        data_class=summary_pb2.DATA_CLASS_SCALAR,
    ).SerializeToString()


class TensorBoardCallback(Callback):
    """Writes tf.summary scalars under `log_dir` (created on the first event)."""

    def __init__(self, log_dir: Path):
        self.log_dir = Path(log_dir)
        self._writer: Any = None
        self._broken = False

    def _write(self, step: int, scalars: dict[str, float | None]) -> None:
        if self._broken:
            return
        try:
            import tensorflow as tf

            if self._writer is None:
                self.log_dir.mkdir(parents=True, exist_ok=True)
                self._writer = tf.summary.create_file_writer(str(self.log_dir))
            with self._writer.as_default(step=step):
                for name, value in scalars.items():
                    if value is not None:
                        tf.summary.write(
                            name, tf.constant(float(value), tf.float32), metadata=_scalar_metadata()
                        )
            self._writer.flush()
        except Exception as exc:  # noqa: BLE001 (best effort: never fail a job for a chart)
            self._broken = True
            log.warning("event=tensorboard_disabled log_dir=%s error=%r", self.log_dir, str(exc))

    def on_run_start(self, event: RunStart) -> None:
        """Nothing to write yet (the folder is made on the first metric)."""

    def on_epoch_end(self, event: EpochEnd) -> None:
        """`loss` and `val_accuracy/task_<j>` at step = epoch."""
        scalars: dict[str, float | None] = {"loss": event.loss}
        for j, acc in enumerate(event.val_accuracy, start=1):
            scalars[f"val_accuracy/task_{j}"] = acc
        self._write(event.epoch, scalars)

    def on_task_end(self, event: TaskEnd) -> None:
        """`test_accuracy/task_<j>`, `test_accuracy/mean_seen` and `frozen_fraction` at
        step = task."""
        seen = event.test_accuracy[: event.task]
        scalars: dict[str, float | None] = {
            f"test_accuracy/task_{j}": acc for j, acc in enumerate(event.test_accuracy, start=1)
        }
        scalars["test_accuracy/mean_seen"] = sum(seen) / len(seen) if seen else None
        scalars["frozen_fraction"] = event.frozen_fraction
        self._write(event.task, scalars)

    def close(self) -> None:
        """Flush and close the event file (safe to call twice)."""
        if self._writer is not None:
            try:
                self._writer.close()
            finally:
                self._writer = None


def with_tensorboard(callback: Callback, experiment_dir: Path) -> Callback:
    """`callback` plus a TensorBoardCallback writing to `<experiment_dir>/tensorboard`.

    Stopping still follows `callback` (a CallbackList stops when any member asks).
    """
    return CallbackList([callback, TensorBoardCallback(Path(experiment_dir) / TENSORBOARD_DIR)])
