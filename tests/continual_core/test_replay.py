"""Experience replay and A-GEM: the episodic memory's sampling (reservoir is uniform over
every example seen, balanced is per class), A-GEM's projection against NumPy, one trace,
task 1 untouched, checkpoint/resume bit-exact, refusals, flags and sweeps; and the key
class-IL claim on real digits (`mnist-5k`, seeds 0-2)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from pydantic import ValidationError
from scipy.stats import chisquare
from typer.testing import CliRunner

from cli.main import app
from continual_core.datasets import load_dataset
from continual_core.events import StopRequested
from continual_core.learner import Learner
from continual_core.methods.agem import agem_project
from continual_core.methods.memory import class_quota, fill
from continual_core.spec import ExperimentSpec, validation_problems
from continual_core.tasks import make_tasks
from continual_core.trainer import train
from store.sweeps import expand_grid
from tests.continual_core.test_trainer import Recorder, _rows


def _stream(memory, x, y, capacity, strategy, rng):
    """`fill` with 1-pixel images holding each example's id."""
    images, labels, seen = memory
    return fill(images, labels, seen, x, y, capacity, strategy, rng)


def _empty(classes: int):
    return np.zeros((0, 1, 1, 1), np.float32), np.zeros(0, np.int32), np.zeros(classes, np.int64)


def _ids(images: np.ndarray) -> np.ndarray:
    return images.reshape(-1).astype(int)


def test_reservoir_keeps_a_uniform_sample_of_every_example_seen() -> None:
    """1,000 examples in 5 tasks of 200 through 100 slots, 400 times: each example is kept
    with probability 1/10 whatever its task (chi-square over the 1,000 inclusion counts)."""
    trials, capacity, tasks, per_task = 400, 100, 5, 200
    counts = np.zeros(tasks * per_task)
    for trial in range(trials):
        rng = np.random.default_rng(trial)
        memory = _empty(10)
        for t in range(tasks):
            ids = np.arange(t * per_task, (t + 1) * per_task)
            x = ids.astype(np.float32).reshape(-1, 1, 1, 1)
            y = (ids % 10).astype(np.int32)
            memory = _stream(memory, x, y, capacity, "reservoir", rng)
            assert len(memory[1]) == min(capacity, (t + 1) * per_task)
        kept = _ids(memory[0])
        assert len(np.unique(kept)) == capacity  # no example twice
        assert (memory[1] == kept % 10).all()  # labels travel with their images
        counts[kept] += 1
    assert chisquare(counts).pvalue > 1e-3
    by_task = counts.reshape(tasks, per_task).sum(1) / (trials * capacity)
    np.testing.assert_allclose(by_task, 1 / tasks, atol=0.01)  # 0.2 each, ± 1 pp


def test_balanced_keeps_an_equal_uniform_share_per_class() -> None:
    """Split-like stream (task k: classes 2k, 2k+1, 100 examples each), 50 slots: after each
    task exactly the quota per class seen; within a class every example equally likely."""
    trials, capacity = 300, 50
    counts = np.zeros((10, 100))
    for trial in range(trials):
        rng = np.random.default_rng(trial)
        memory = _empty(10)
        for t in range(5):
            y = np.repeat(np.arange(2 * t, 2 * t + 2), 100).astype(np.int32)
            x = (y * 100 + np.tile(np.arange(100), 2)).astype(np.float32).reshape(-1, 1, 1, 1)
            memory = _stream(memory, x, y, capacity, "balanced", rng)
            quota = class_quota(capacity, np.arange(2 * t + 2))
            assert dict(zip(*np.unique(memory[1], return_counts=True))) == quota
        ids = _ids(memory[0])
        assert (ids // 100 == memory[1]).all() and len(np.unique(ids)) == capacity
        counts[ids // 100, ids % 100] += 1
    assert class_quota(50, np.arange(6)) == {0: 9, 1: 9, 2: 8, 3: 8, 4: 8, 5: 8}
    for c in range(10):  # 5 of 100 kept per class, uniformly (shares shrank 25 → 5)
        assert chisquare(counts[c]).pvalue > 1e-4, c


def test_balanced_with_every_class_in_every_task_samples_each_class_across_tasks() -> None:
    """Permute-like stream (all classes each task): each class's share is a uniform sample
    of that class's examples of every task so far."""
    trials, task_ids = 300, np.zeros(3)
    for trial in range(trials):
        rng = np.random.default_rng(trial)
        memory = _empty(4)
        for t in range(3):
            y = np.tile(np.arange(4), 50).astype(np.int32)
            x = (t * 1000 + np.arange(200)).astype(np.float32).reshape(-1, 1, 1, 1)
            memory = _stream(memory, x, y, 40, "balanced", rng)
        assert np.bincount(memory[1], minlength=4).tolist() == [10, 10, 10, 10]
        task_ids += np.bincount(_ids(memory[0]) // 1000, minlength=3)
    np.testing.assert_allclose(task_ids / (trials * 40), 1 / 3, atol=0.02)


def test_agem_projection_equals_numpy() -> None:
    rng = np.random.default_rng(0)
    shapes = [(7, 3), (3,)]
    for sign in (-1.0, 1.0):
        ref = [rng.normal(size=s).astype(np.float32) for s in shapes]
        flat_ref = np.concatenate([r.ravel() for r in ref])
        base = rng.normal(size=flat_ref.size).astype(np.float32)
        base -= (base @ flat_ref) / (flat_ref @ flat_ref) * flat_ref  # ⟂ ref
        flat_g = base + sign * 0.7 * flat_ref
        g = np.split(flat_g, [21])
        g = [g[0].reshape(7, 3), g[1]]
        out = agem_project([tf.constant(v) for v in g], [tf.constant(r) for r in ref])
        flat_out = np.concatenate([o.numpy().ravel() for o in out])
        dot = flat_g @ flat_ref
        want = flat_g - (dot / (flat_ref @ flat_ref)) * flat_ref if dot < 0 else flat_g
        np.testing.assert_allclose(flat_out, want, rtol=1e-5, atol=1e-5)
        if sign < 0:  # projected onto the plane ⟂ g_ref: the step no longer raises its loss
            assert abs(flat_out @ flat_ref) < 1e-4 and not np.allclose(flat_out, flat_g)
        else:
            np.testing.assert_array_equal(flat_out, flat_g)


@pytest.mark.parametrize(
    "methods",
    [
        {"replay": {"buffer": 50}, "ewc": {}},
        {"agem": {"buffer": 50, "strategy": "balanced"}, "fim": {}},
    ],
)
def test_memory_fills_and_the_step_is_traced_once(tmp_path: Path, methods: dict) -> None:
    spec = ExperimentSpec(dataset="digits", dataset_update="switch", splits=3, epochs=3,
                          batch_size=64, **methods)  # fmt: skip
    tasks = make_tasks(spec, load_dataset(spec, tmp_path))
    learner = Learner(spec)
    memory = learner.methods[next(iter(methods))].memory
    for task in tasks:
        learner.start_task(task.index)
        order = np.random.default_rng(task.index).permutation(len(task.train_y))
        learner.train_epoch(
            tf.constant(task.train_x), tf.constant(task.train_y), order, lambda: False
        )
        learner.consolidate(task.train_x, task.train_y, task.index)
        assert int(memory.count) == 50
        assert set(memory.labels.numpy().tolist()) == {
            c for t in tasks[: task.index] for c in t.classes
        }
    assert learner.trace_count == 1


BASE = {"dataset": "digits", "dataset_update": "switch", "splits": 3, "epochs": 6, "batch_size": 64,
        "augment": True, "seed": 4}  # fmt: skip


@pytest.mark.parametrize("methods", [{"replay": {}}, {"agem": {}}])
def test_task_1_trains_exactly_as_fine_tuning(tmp_path: Path, methods: dict) -> None:
    plain = train(ExperimentSpec(**BASE), dataset_cache=tmp_path)
    with_memory = train(ExperimentSpec(**BASE, **methods), dataset_cache=tmp_path)
    assert with_memory["accuracy_matrix"][0] == plain["accuracy_matrix"][0]
    assert _rows(with_memory)[:2] == _rows(plain)[:2]
    assert with_memory["accuracy_matrix"][2] != plain["accuracy_matrix"][2]  # later it acts


@pytest.mark.parametrize(
    "methods",
    [{"replay": {"buffer": 80, "strategy": "balanced"}, "ewc": {"lambda": 10.0}},
     {"agem": {"buffer": 80}, "incdet": {"threshold": 0.1}}],
)  # fmt: skip
def test_stop_then_resume_equals_uninterrupted(tmp_path: Path, methods: dict) -> None:
    spec = ExperimentSpec(**BASE, **methods)
    uninterrupted = train(spec, dataset_cache=tmp_path)
    ckpt = tmp_path / "ckpt"
    with pytest.raises(StopRequested):  # stopped in task 3: the memory of tasks 1-2 is on disk
        train(spec, dataset_cache=tmp_path, callback=Recorder(stop_in_task=3), checkpoint_dir=ckpt)
    name = next(iter(methods))
    with np.load(ckpt / "task-2" / "state.npz") as saved:
        images, labels, count = (saved[f"{name}/{i:04d}"] for i in range(3))
        assert int(count) == 80 and images[:80].any() and set(labels[:80]) <= set(range(7))
        assert f"{name}/0004" in saved.files  # the sampler's state
    resumed = train(spec, dataset_cache=tmp_path, checkpoint_dir=ckpt)
    assert resumed["accuracy_matrix"] == uninterrupted["accuracy_matrix"]
    assert _rows(resumed) == _rows(uninterrupted)


def _problems(data: dict) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as err:
        ExperimentSpec.model_validate(data)
    return validation_problems(err.value)


def test_replay_and_agem_together_are_refused_and_bad_values_named() -> None:
    [(field, message)] = _problems({"replay": {}, "agem": {}})
    assert field == "agem" and "A-GEM and replay cannot be combined" in message
    assert _problems({"replay": {"strategy": "fifo"}})[0][0] == "replay.strategy"
    assert _problems({"agem": {"buffer": 0}})[0][0] == "agem.buffer"
    spec = ExperimentSpec(replay={}, ewc={}, fim={})  # replay composes
    assert list(spec.methods)[-1] == "replay"
    assert spec.to_json_dict()["replay"] == {"buffer": 500, "strategy": "reservoir", "ratio": None}
    assert ExperimentSpec(agem={}).to_json_dict()["agem"] == {
        "buffer": 500,
        "strategy": "reservoir",
    }


def test_flags_and_sweeps_reach_the_memory_fields(tmp_path: Path) -> None:
    runner = CliRunner()
    helptext = runner.invoke(app, ["run", "--help"], env={"COLUMNS": "240"}).output
    for flag in ("--replay-buffer", "--replay-strategy", "--replay-ratio", "--agem-buffer"):
        assert flag in helptext
    args = ["run", "--dataset", "digits", "--dataset-update", "switch", "--splits", "2",
            "--epochs", "2", "--batch-size", "128", "--data-dir", str(tmp_path), "--json"]  # fmt: skip
    ok = runner.invoke(
        app, [*args, "--replay", "--replay-buffer", "40", "--replay-strategy", "balanced"]
    )
    assert ok.exit_code == 0, ok.output
    bad = runner.invoke(app, [*args, "--replay", "--agem"], env={"COLUMNS": "200"})
    assert bad.exit_code == 2 and "replay" in bad.output
    points = expand_grid({"dataset": "digits", "replay": {}},
                         {"replay.buffer": [100, 500], "replay.strategy": ["reservoir", "balanced"]})  # fmt: skip
    specs = [ExperimentSpec.model_validate(s) for _, s in points]
    assert [(s.replay.buffer, s.replay.strategy) for s in specs] == [
        (100, "reservoir"), (100, "balanced"), (500, "reservoir"), (500, "balanced")]  # fmt: skip


def test_replay_500_beats_fine_tuning_by_40_points_in_class_il(tmp_path: Path) -> None:
    """The README's class-IL claim (mnist-5k, 5-task split, shared head, 5 epochs per task,
    mean of seeds 0-2): replay with 500 examples (its defaults) ≥ 60 % average accuracy and
    ≥ fine-tuning + 40 points. Measured: 69.3 % against 18.0 % (about 25 s on 2 cores)."""
    base = {"dataset": "mnist-5k", "dataset_update": "switch", "splits": 5, "epochs": 25}
    cache = tmp_path
    average = {}
    for name, extra in {"fine-tune": {}, "replay": {"replay": {"buffer": 500}}}.items():
        runs = [
            train(ExperimentSpec(**base, **extra, seed=s), dataset_cache=cache) for s in (0, 1, 2)
        ]
        average[name] = np.mean([r["summary"]["average_accuracy"] for r in runs])
    assert average["replay"] >= 0.60 and average["replay"] >= average["fine-tune"] + 0.40, average
