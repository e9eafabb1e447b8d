"""`train(spec)`: the whole continual-learning run, top to bottom.

    load the dataset → make the task stream → build the learner (model, Adam, the active
    methods and their state) → maybe restore the latest task checkpoint
    → for each task: its training set (with `joint`: the union of tasks 1..k's)
                     → for each epoch: train, evaluate validation accuracy on every task
                     → test accuracy on every task (a row of the accuracy matrix)
                     → consolidate: each method's end of task (e.g. the Fisher → the EWC
                       quadratic / the FIM masks), unless it was the last task
                     → on_task_end, then checkpoint (written by a thread while the next
                       task's first epoch trains, or the final model is saved; on disk
                       before that epoch's EpochEnd, and before train() returns or raises)
    → summary (average accuracy, BWT, FWT, forgetting), scenario, timings, versions.

Accuracies are fractions in [0, 1]; times are seconds.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import time
from pathlib import Path
from typing import TYPE_CHECKING

import keras
import numpy as np
import tensorflow as tf

from continual_core.checkpoint import CheckpointWriter, latest_checkpoint, load_checkpoint
from continual_core.datasets import load_dataset
from continual_core.events import Callback, EpochEnd, RunStart, TaskEnd, TrainingDiverged
from continual_core.learner import Learner
from continual_core.metrics import summarize
from continual_core.seeds import seed_for
from continual_core.spec import ExperimentSpec
from continual_core.tasks import Stream, make_tasks, training_set, worker_streams

if TYPE_CHECKING:
    from continual_core.compiled import LearnerCache


def train(
    spec: ExperimentSpec,
    *,
    dataset_cache: Path,
    callback: Callback | None = None,
    checkpoint_dir: Path | None = None,
    resume: bool = True,
    deterministic: bool = True,
    learners: LearnerCache | None = None,
) -> dict:
    """Train `spec` on its task stream and return the result (the shape of docs/architecture.md).

    - `dataset_cache`: the folder of real dataset files (Keras names: mnist.npz, ...).
    - `callback`: hears RunStart / EpochEnd / TaskEnd; `should_stop()` is polled between
      batches and ends the run with `StopRequested`.
    - `checkpoint_dir`: after every task the complete state goes to `task-{k}/`, and the
      final model to `model.keras`. With `resume`, the run continues after the latest
      task checkpoint found there, and ends exactly as an uninterrupted run would.
    - `deterministic`: turn on TensorFlow's op determinism (process-wide).
    - `learners`: a worker's `continual_core.compiled.LearnerCache`: a learner compiled for
      an earlier job of the same graph is re-initialised instead of built (same result,
      bit for bit, without tracing again), and the job's data comes from the process's
      `continual_core.tasks.worker_streams()` (loaded and permuted once per seed and
      stream). None (or a disabled cache): a new learner, the data loaded anew.

    Raises `DatasetUnavailable`, `TrainingDiverged` (NaN/inf epoch loss), `StopRequested`,
    `CheckpointMismatch`.
    """
    started = time.perf_counter()
    callback = callback or Callback()
    if deterministic:
        os.environ.setdefault("TF_DETERMINISTIC_OPS", "1")
        tf.config.experimental.enable_op_determinism()

    if learners is not None and learners.enabled:
        stream = worker_streams().stream(spec, Path(dataset_cache), load_dataset)
    else:
        data = load_dataset(spec, Path(dataset_cache))
        stream = Stream(data, make_tasks(spec, data))
    tasks = stream.tasks
    learner = learners.learner(spec) if learners is not None else Learner(spec)
    val_x, val_y, val_bounds = _stack(stream, "val")
    test_x, test_y, test_bounds = _stack(stream, "test")
    spec_json = spec.to_json_dict()

    history: dict = {"spec": spec_json, "epochs": [], "accuracy_matrix": [], "initial_accuracy": None,
                     "timings": {"train_epoch_s": [], "eval_s": [], "fisher_s": []}, "elapsed_s": 0.0}
    first_task = 1
    latest = latest_checkpoint(Path(checkpoint_dir)) if (checkpoint_dir and resume) else None
    if latest is not None:
        history = load_checkpoint(latest, learner.state(), spec_json)
        first_task = int(history.pop("task")) + 1
    else:
        history["initial_accuracy"] = learner.accuracy(test_x, test_y, test_bounds)
    elapsed_before = float(history.get("elapsed_s", 0.0))
    callback.on_run_start(RunStart(spec.num_tasks, spec.epochs_per_task, first_task=first_task))

    epoch = sum(spec.epochs_per_task[: first_task - 1])
    writer = CheckpointWriter()  # each task's checkpoint written while the next one trains
    try:
        for task in tasks[first_task - 1 :]:
            k = task.index
            learner.start_task(k)
            # built once per task, not kept after it; labels as the learner trains on them
            train_x, train_y = training_set(tasks, k, joint=spec.joint, encode=learner.labels)
            x, y = tf.constant(train_x), tf.constant(train_y)
            if learner.consolidates and k < spec.num_tasks:  # this task ends in an estimate
                _warm_up(learner)  # in the background, once (bench/cold_fisher.py)
            for task_epoch in range(1, spec.epochs_per_task[k - 1] + 1):
                epoch += 1
                order = np.random.default_rng(seed_for(spec, k, 1000 + task_epoch)).permutation(len(train_y))
                t0 = time.perf_counter()
                loss = learner.train_epoch(x, y, order, callback.should_stop)
                train_s = time.perf_counter() - t0
                writer.join()  # the previous task's checkpoint: on disk before this epoch's event
                if not math.isfinite(loss):
                    raise TrainingDiverged(k, epoch, loss)
                t0 = time.perf_counter()
                val_accuracy = learner.accuracy(val_x, val_y, val_bounds)
                eval_s = time.perf_counter() - t0
                event = EpochEnd(task=k, epoch=epoch, task_epoch=task_epoch, loss=loss,
                                 val_accuracy=val_accuracy, train_s=train_s, eval_s=eval_s)
                history["epochs"].append(event.as_dict())
                history["timings"]["train_epoch_s"].append(train_s)
                history["timings"]["eval_s"].append(eval_s)
                callback.on_epoch_end(event)

            row = learner.accuracy(test_x, test_y, test_bounds)
            history["accuracy_matrix"].append(row)
            fisher_s, report = None, {}
            if learner.consolidates and k < spec.num_tasks:  # no later task, no use
                t0 = time.perf_counter()
                report = learner.consolidate(train_x, train_y, k)
                fisher_s = time.perf_counter() - t0  # the time of the whole end of task
                history["timings"]["fisher_s"].append(fisher_s)
            folder = Path(checkpoint_dir) / f"task-{k}" if checkpoint_dir else None
            callback.on_task_end(TaskEnd(task=k, test_accuracy=row, fisher_s=fisher_s,
                                         frozen_fraction=report.get("frozen_fraction"),
                                         checkpoint=str(folder) if folder else None))
            history["elapsed_s"] = elapsed_before + time.perf_counter() - started
            if checkpoint_dir:
                writer.submit(Path(checkpoint_dir), k, learner.state(), history)
        if checkpoint_dir:  # while the last checkpoint is written
            _save_model(learner.model, Path(checkpoint_dir) / "model.keras")
    except BaseException:
        _join_warm_ups(learner)
        with contextlib.suppress(Exception):  # the run's own error wins over the write's
            writer.join()  # the last checkpoint whole on disk (or not there) before raising
        raise
    writer.join()
    return _result(spec, history, elapsed_before + time.perf_counter() - started)


def _warm_up(learner: Learner) -> None:
    """Each importance estimator that can, compiles itself in a background thread, once per
    estimator (a worker's kept learner never again), for the sample sizes its methods ask
    for: a cold process's first estimate at the end of the task then finds its functions
    traced and instantiated. Started as the run's first task that ends in an estimate
    starts: its whole training is the time to finish in (started after its first epoch
    instead, it was sometimes still running at the task's end on a loaded machine)."""
    sizes: dict = {}
    for method in learner.methods.values():
        for key in type(method).estimators:
            samples = getattr(method.config, "samples", None)
            sizes.setdefault(key, []).extend([samples] if isinstance(samples, int) else [])
    for key, estimator in learner.estimators.items():
        if callable(getattr(estimator, "warm_up", None)) and sizes.get(key):
            estimator.warm_up(sizes[key])


def _join_warm_ups(learner: Learner) -> None:
    for estimator in learner.estimators.values():
        if callable(getattr(estimator, "join_warm_up", None)):
            estimator.join_warm_up()


def _stack(stream: Stream, split: str) -> tuple[tf.Tensor, np.ndarray, list[int]]:
    """Every task's `split` set in one tensor, its labels, and the task boundaries (built
    once for a cached stream: the tensor is immutable, the labels read-only)."""
    if stream.derived is not None and split in stream.derived:
        return stream.derived[split]
    xs, ys = zip(*(t.split(split) for t in stream.tasks))
    bounds = np.concatenate([[0], np.cumsum([len(v) for v in ys])]).astype(int).tolist()
    stacked = tf.constant(np.concatenate(xs)), np.concatenate(ys), bounds
    if stream.derived is not None:
        stacked[1].flags.writeable = False
        stream.derived[split] = stacked
    return stacked


def _save_model(model: keras.Model, path: Path) -> None:
    """Save the trained network (logits out) atomically."""
    tmp = path.with_name(f".{path.stem}.tmp.keras")
    model.save(tmp)
    os.replace(tmp, path)


def _result(spec: ExperimentSpec, history: dict, total_s: float) -> dict:
    matrix = history["accuracy_matrix"]
    return {
        "spec": spec.to_json_dict(),
        "epochs": history["epochs"],
        "accuracy_matrix": matrix,
        "initial_accuracy": history["initial_accuracy"],
        "summary": summarize(matrix, history["initial_accuracy"]),
        "scenario": spec.scenario,
        "timings": {**history["timings"], "total_s": total_s},
        "fisher": spec.fisher,
        "versions": {
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
        "device": device_name(),
    }


def device_name() -> str:
    """"CPU", or the name of the first visible GPU."""
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "CPU"
    details = tf.config.experimental.get_device_details(gpus[0])
    return str(details.get("device_name", gpus[0].name))
