"""train(): the result's shape, determinism, checkpoint/resume equality, stop and divergence."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from continual_core.events import (
    Callback,
    EpochEnd,
    RunStart,
    StopRequested,
    TaskEnd,
    TrainingDiverged,
)
from continual_core.spec import ExperimentSpec
from continual_core.trainer import train

SPEC = {"dataset": "digits", "dataset_update": "permute", "splits": 3, "epochs": 6, "batch_size": 64,
        "ewc": {"lambda": 10.0}, "fim": {"threshold": 1e-3}, "augment": True, "seed": 3}


@dataclass
class Recorder(Callback):
    stop_in_task: int | None = None
    starts: list[RunStart] = field(default_factory=list)
    epochs: list[EpochEnd] = field(default_factory=list)
    tasks: list[TaskEnd] = field(default_factory=list)

    def on_run_start(self, event: RunStart) -> None:
        self.starts.append(event)

    def on_epoch_end(self, event: EpochEnd) -> None:
        self.epochs.append(event)

    def on_task_end(self, event: TaskEnd) -> None:
        self.tasks.append(event)

    def should_stop(self) -> bool:
        return bool(self.stop_in_task and self.epochs and self.epochs[-1].task == self.stop_in_task)


def _rows(result: dict) -> list[tuple]:
    return [(e["task"], e["epoch"], e["task_epoch"], e["loss"], tuple(e["val_accuracy"])) for e in result["epochs"]]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Recorder]:
    rec = Recorder()
    cache = tmp_path_factory.mktemp("cache")
    return train(ExperimentSpec(**SPEC), dataset_cache=cache, callback=rec), rec


def test_result_shape_and_events(uninterrupted: tuple[dict, Recorder]) -> None:
    result, rec = uninterrupted
    assert set(result) >= {"spec", "epochs", "accuracy_matrix", "summary", "timings", "fisher", "versions", "device"}
    assert len(result["accuracy_matrix"]) == 3 and all(len(r) == 3 for r in result["accuracy_matrix"])
    assert set(result["summary"]) == {"average_accuracy", "bwt", "fwt", "forgetting"}
    assert len(result["epochs"]) == 6 and [e["task"] for e in result["epochs"]] == [1, 1, 2, 2, 3, 3]
    assert all(len(e["val_accuracy"]) == 3 for e in result["epochs"])
    assert len(result["timings"]["train_epoch_s"]) == 6 and len(result["timings"]["fisher_s"]) == 2
    assert result["spec"]["ewc"]["lambda"] == 10.0 and result["fisher"] == "empirical"
    assert set(result["versions"]) == {"tensorflow", "keras", "numpy", "python"}
    assert rec.starts == [RunStart(3, [2, 2, 2], 1)] and [t.task for t in rec.tasks] == [1, 2, 3]
    assert rec.tasks[0].frozen_fraction is not None and rec.tasks[0].fisher_s is not None
    assert result["accuracy_matrix"][0][0] > 0.5  # it learned task 1


def test_same_seed_same_results(uninterrupted: tuple[dict, Recorder], tmp_path: Path) -> None:
    again = train(ExperimentSpec(**SPEC), dataset_cache=tmp_path)
    assert again["accuracy_matrix"] == uninterrupted[0]["accuracy_matrix"]
    assert _rows(again) == _rows(uninterrupted[0])


def test_stop_then_resume_from_checkpoint_equals_uninterrupted(
    uninterrupted: tuple[dict, Recorder], tmp_path: Path
) -> None:
    ckpt = tmp_path / "ckpt"
    stopper = Recorder(stop_in_task=2)
    with pytest.raises(StopRequested):
        train(ExperimentSpec(**SPEC), dataset_cache=tmp_path, callback=stopper, checkpoint_dir=ckpt)
    assert [e.task for e in stopper.epochs] == [1, 1, 2]  # the epochs so far were delivered
    assert (ckpt / "task-1" / "state.npz").is_file() and not (ckpt / "task-2").exists()
    rec = Recorder()
    resumed = train(ExperimentSpec(**SPEC), dataset_cache=tmp_path, callback=rec, checkpoint_dir=ckpt)
    assert rec.starts[0].first_task == 2 and [e.task for e in rec.epochs] == [2, 2, 3, 3]
    assert resumed["accuracy_matrix"] == uninterrupted[0]["accuracy_matrix"]
    assert _rows(resumed) == _rows(uninterrupted[0])
    assert (ckpt / "task-3").is_dir() and (ckpt / "model.keras").is_file()
    import keras

    model = keras.models.load_model(ckpt / "model.keras")
    assert model.output_shape == (None, 10)


def test_checkpoint_of_another_spec_is_refused(tmp_path: Path) -> None:
    from continual_core.checkpoint import CheckpointMismatch

    small = {"dataset": "digits", "dataset_update": "permute", "splits": 2, "epochs": 2, "batch_size": 128}
    train(ExperimentSpec(**small), dataset_cache=tmp_path, checkpoint_dir=tmp_path / "c")
    with pytest.raises(CheckpointMismatch):
        train(ExperimentSpec(**{**small, "seed": 1}), dataset_cache=tmp_path, checkpoint_dir=tmp_path / "c")


def test_nan_loss_raises_training_diverged(tmp_path: Path) -> None:
    spec = ExperimentSpec(dataset="digits", epochs=3, learning_rate=1e30, batch_size=32)
    with pytest.raises(TrainingDiverged) as err:
        train(spec, dataset_cache=tmp_path)
    assert err.value.task == 1 and err.value.epoch >= 1
