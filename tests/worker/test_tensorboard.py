"""The worker's TensorBoard callback writes readable event files with the right scalars."""

from __future__ import annotations

import pytest

from continual_core.events import Callback, CallbackList, EpochEnd, TaskEnd
from tests.requirements import require_module
from worker.tensorboard import TensorBoardCallback, with_tensorboard

tf = require_module("tensorflow", hint="pip install -e '.[cpu]'")


def read_scalars(log_dir) -> dict[str, list[tuple[int, float]]]:
    """{tag: [(step, value)]} from every event file under `log_dir`."""
    from tensorflow.python.framework import tensor_util

    out: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(log_dir.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                assert value.metadata.plugin_data.plugin_name == "scalars"
                number = float(tensor_util.MakeNdarray(value.tensor))
                out.setdefault(value.tag, []).append((event.step, number))
    return out


def test_epoch_and_task_scalars(tmp_path):
    cb = TensorBoardCallback(tmp_path / "tb")
    cb.on_epoch_end(EpochEnd(task=1, epoch=1, task_epoch=1, loss=0.5, val_accuracy=[0.8, 0.1],
                             train_s=0.1, eval_s=0.0))
    cb.on_epoch_end(EpochEnd(task=2, epoch=2, task_epoch=1, loss=0.25, val_accuracy=[0.7, 0.9],
                             train_s=0.1, eval_s=0.0))
    cb.on_task_end(TaskEnd(task=2, test_accuracy=[0.6, 0.8], frozen_fraction=0.25))
    assert not cb._broken
    cb.close()
    scalars = read_scalars(tmp_path / "tb")
    assert scalars["loss"] == [(1, 0.5), (2, 0.25)]
    assert [s for s, _ in scalars["val_accuracy/task_2"]] == [1, 2]
    assert scalars["val_accuracy/task_2"][1][1] == pytest.approx(0.9)
    assert scalars["test_accuracy/task_1"] == [(2, pytest.approx(0.6))]
    assert scalars["test_accuracy/mean_seen"] == [(2, pytest.approx(0.7))]
    assert scalars["frozen_fraction"] == [(2, 0.25)]


def test_a_broken_folder_never_fails_the_job(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    cb = TensorBoardCallback(blocker / "tb")
    cb.on_epoch_end(EpochEnd(task=1, epoch=1, task_epoch=1, loss=0.5, val_accuracy=[0.8],
                             train_s=0.1, eval_s=0.0))  # logs a warning, raises nothing
    assert cb._broken


def test_with_tensorboard_keeps_the_stop_signal(tmp_path):
    class Stopper(Callback):
        def should_stop(self) -> bool:
            return True

    combined = with_tensorboard(Stopper(), tmp_path)
    assert isinstance(combined, CallbackList) and combined.should_stop()
    assert combined.callbacks[1].log_dir == tmp_path / "tensorboard"


def test_tensorboard_itself_shows_the_scalars(tmp_path):
    """TensorBoard's own loader (what `tensorboard --logdir` serves) sees scalar tags."""
    require_module("tensorboard", hint="pip install -e '.[cpu]'")
    from tensorboard.backend.event_processing.plugin_event_multiplexer import EventMultiplexer

    cb = TensorBoardCallback(tmp_path / "tb")
    cb.on_epoch_end(EpochEnd(task=1, epoch=1, task_epoch=1, loss=0.5, val_accuracy=[0.8, 0.1],
                             train_s=0.1, eval_s=0.0))
    cb.close()
    mux = EventMultiplexer()
    mux.AddRunsFromDirectory(str(tmp_path / "tb"))
    mux.Reload()
    tags = mux.PluginRunToTagToContent("scalars")["."]
    assert {"loss", "val_accuracy/task_1", "val_accuracy/task_2"} <= set(tags)
    values = mux.Tensors(".", "val_accuracy/task_1")
    assert [(e.step, float(tf.make_ndarray(e.tensor_proto))) for e in values] == [(1, pytest.approx(0.8))]
