"""TensorBoard event files for a job, written by the worker as the metrics happen.

`TensorBoardCallback` is a `continual_core.events.Callback`: per epoch it writes the loss
and the validation accuracy of every task (step = the run's epoch number), per finished
task the row of the test accuracy matrix and the frozen fraction (step = the task number).
A job's callback (`TensorBoardCallback.for_job`) writes into a run folder with a readable
name, `<artifacts>/experiments/<id>/tensorboard/<id>-<slug>/` (the slug: the experiment's
name, else its dataset, scenario and methods, e.g. `12-digits-permute-ewc-l100`), records
the run's hyper-parameters for TensorBoard's HParams plugin when it starts (the flattened
spec: `ewc.lambda`, `ewc` on/off and every method's flag, `dataset`, `seed`,
`learning_rate`, ...) and, when the run succeeded, its final metrics as the scalars
`summary/average_accuracy`, `summary/bwt`, `summary/fwt`, `summary/forgetting` (the
stored summary). So over many experiments,

    tensorboard --logdir <artifacts_dir>/experiments

lists the runs by id and name, and the HParams tab tabulates, filters and sorts them by
λ (or any spec field) against their final average accuracy. The artifact is still the
`tensorboard/` folder (`tensorboard.zip`); runs written before kept their flat files.

An event's scalars are one `Summary` proto written by one op, each as `tf.summary.write`
records it (no tensorboard package needed); the HParams record needs the tensorboard
package (in the `cpu`/`gpu` extras) and is left out, logged once, without it. It lives in the worker (the API never imports TensorFlow). Writing is best effort: a
failure (disk full, read-only folder) is logged once and the callback goes quiet; it never
fails the job. Accuracies are fractions in [0, 1].
"""

from __future__ import annotations

import functools
import json
import logging
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from continual_core.events import Callback, CallbackList, EpochEnd, RunStart, TaskEnd
from continual_core.methods import METHODS

log = logging.getLogger("ewc.worker")

#: Sub-folder of an experiment's artifacts that holds its event files.
TENSORBOARD_DIR = "tensorboard"
#: Spec fields that are scheduling, not science: not hyper-parameters.
NOT_HPARAMS = frozenset({"tags", "priority", "device", "time_limit_s"})
#: The summary's keys written as `summary/<key>` scalars (the HParams tab's metrics).
SUMMARY_KEYS = ("average_accuracy", "bwt", "fwt", "forgetting")
MAX_SLUG = 48


def _slug(text: str) -> str:
    """Lower-case letters, digits, dots and single dashes: a portable folder name part."""
    slug = re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-.")
    return slug[:MAX_SLUG].rstrip("-.")


def _describe(spec: Mapping[str, Any]) -> str:
    """dataset, scenario and the active methods (EWC with its λ): "digits-permute-ewc-l100"."""
    parts = [str(spec.get("dataset") or ""), str(spec.get("dataset_update") or "")]
    for name in METHODS:
        config = spec.get(name)
        if isinstance(config, Mapping):
            lam = config.get("lambda")
            parts.append(f"{name}-l{lam:g}" if isinstance(lam, int | float) else name)
    if spec.get("joint"):
        parts.append("joint")
    return "-".join(p for p in parts if p)


def run_name(experiment_id: int, name: str | None, spec: Mapping[str, Any]) -> str:
    """A job's TensorBoard run folder: `<id>-<slug of its name>`, else `<id>-<dataset>-
    <scenario>-<methods>`; the same on every attempt, so a resumed job adds to its run."""
    slug = _slug(name or "") or _slug(_describe(spec))
    return f"{int(experiment_id)}-{slug}" if slug else str(int(experiment_id))


def hparams(spec: Mapping[str, Any], name: str | None = None) -> dict[str, bool | float | str]:
    """The spec as HParams values: dotted paths (`ewc.lambda`, `synthetic.classes`), each
    method's on/off flag under its own key (`ewc`: true), lists as JSON text, the name as
    `name`; off options and scheduling fields left out."""
    out: dict[str, bool | float | str] = {}

    def add(path: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for key, inner in value.items():
                add(f"{path}.{key}", inner)
        elif isinstance(value, bool | str):
            out[path] = value
        elif isinstance(value, int | float):
            out[path] = float(value)
        elif isinstance(value, list | tuple):
            out[path] = json.dumps(value)

    for key, value in spec.items():
        if key in NOT_HPARAMS or key == "name":
            continue
        if key in METHODS:
            out[key] = isinstance(value, Mapping)
        add(key, value)
    if name or spec.get("name"):
        out["name"] = str(name or spec.get("name"))
    return out


@functools.cache
def _scalar_metadata() -> Any:
    """What TensorBoard's scalar plugin expects of a scalar (as `tensorboard.summary.v2.scalar`
    writes it); `tf.summary.scalar` itself needs the tensorboard package, which a worker
    need not have."""
    from tensorflow.core.framework import summary_pb2

    return summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"),
        data_class=summary_pb2.DATA_CLASS_SCALAR,
    )


def _scalars_pb(scalars: dict[str, float | None]) -> bytes:
    """One `Summary` of float32 scalars, as `tf.summary.write` records each of them (tag,
    the scalar plugin's metadata, the value as a tensor): written by one op, not one per
    scalar."""
    import numpy as np
    import tensorflow as tf
    from tensorflow.core.framework import summary_pb2

    return summary_pb2.Summary(value=[
        summary_pb2.Summary.Value(tag=name, metadata=_scalar_metadata(),
                                  tensor=tf.make_tensor_proto(np.float32(value)))
        for name, value in scalars.items() if value is not None
    ]).SerializeToString()  # fmt: skip


class TensorBoardCallback(Callback):
    """Writes tf.summary scalars under `log_dir` (created on the first event), and the
    run's hyper-parameters when it starts if `hparams` is set (`for_job` sets it)."""

    def __init__(self, log_dir: Path):
        self.log_dir = Path(log_dir)
        self._writer: Any = None
        self._broken = False
        self.hparams: dict[str, bool | float | str] | None = None
        self.num_tasks: int | None = None

    @classmethod
    def for_job(
        cls, experiment_dir: Path, experiment_id: int, name: str | None, spec: Mapping[str, Any]
    ) -> TensorBoardCallback:
        """The callback of a job: its run folder `<experiment_dir>/tensorboard/<run_name>`
        and its spec as hyper-parameters."""
        callback = cls(Path(experiment_dir) / TENSORBOARD_DIR / run_name(experiment_id, name, spec))
        callback.hparams = hparams(spec, name)
        return callback

    def _open(self) -> Any:
        import tensorflow as tf

        if self._writer is None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            self._writer = tf.summary.create_file_writer(str(self.log_dir))
        return self._writer

    def _write(self, step: int, scalars: dict[str, float | None]) -> None:
        if self._broken:
            return
        try:
            import tensorflow as tf

            with self._open().as_default(step=step):
                tf.summary.experimental.write_raw_pb(_scalars_pb(scalars), step=step)
            self._writer.flush()
        except Exception as exc:  # noqa: BLE001 (best effort: never fail a job for a chart)
            self._broken = True
            log.warning("event=tensorboard_disabled log_dir=%s error=%r", self.log_dir, str(exc))

    def _write_hparams(self) -> None:
        """The HParams plugin's session start (`hparams_pb`: the values, the run's name as
        the trial id), at step 0; skipped, logged, without the tensorboard package."""
        if self._broken or not self.hparams:
            return
        try:
            from tensorboard.plugins.hparams import summary_v2 as hp
        except ImportError:
            log.info("event=tensorboard_hparams_skipped log_dir=%s reason=%r", self.log_dir,
                     "no tensorboard package (pip install tensorboard)")  # fmt: skip
            return
        try:
            import tensorflow as tf

            pb = hp.hparams_pb(self.hparams, trial_id=self.log_dir.name, start_time_secs=time.time())
            with self._open().as_default(step=0):
                tf.summary.experimental.write_raw_pb(pb.SerializeToString(), step=0)
            self._writer.flush()
        except Exception as exc:  # noqa: BLE001 (best effort, as every chart)
            self._broken = True
            log.warning("event=tensorboard_disabled log_dir=%s error=%r", self.log_dir, str(exc))

    def on_run_start(self, event: RunStart) -> None:
        """The hyper-parameters (when set): the folder is made now."""
        self.num_tasks = event.num_tasks
        self._write_hparams()

    def write_summary(self, summary: Mapping[str, Any] | None) -> None:
        """The run's final metrics (its stored summary) as `summary/<key>` scalars at step
        = the number of tasks: the HParams tab's metrics columns."""
        if summary:
            self._write(self.num_tasks or 1, {f"summary/{k}": summary.get(k) for k in SUMMARY_KEYS})

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
