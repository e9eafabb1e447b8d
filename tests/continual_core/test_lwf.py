"""LwF: its loss against a NumPy reference, off in task 1, the frozen copy, one KL per earlier
head with `heads: multi`; with MAS, EWC and IncDet (IncDet's full method) in one trace, and
bit-exact resume with their state."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from pydantic import ValidationError
from typer.testing import CliRunner

from cli.main import app
from continual_core.datasets import load_dataset
from continual_core.learner import Learner
from continual_core.methods.lwf import distillation_loss
from continual_core.methods.mas import MASImportance
from continual_core.spec import ExperimentSpec
from continual_core.tasks import make_tasks
from continual_core.trainer import train
from tests.continual_core.test_trainer import Recorder, _rows

BASE = {
    "dataset": "digits",
    "dataset_update": "permute",
    "splits": 3,
    "epochs": 3,
    "batch_size": 64,
}


def _tasks(spec: ExperimentSpec, tmp_path: Path) -> list:
    return make_tasks(spec, load_dataset(spec, tmp_path))


def _train_task(learner: Learner, task, epochs: int = 1) -> None:
    learner.start_task(task.index)
    x, y = tf.constant(task.train_x), tf.constant(task.train_y)
    for e in range(epochs):
        order = np.random.default_rng(e).permutation(len(task.train_y))
        learner.train_epoch(x, y, order, lambda: False)


def _np_distillation(old: np.ndarray, new: np.ndarray, t: float) -> float:
    def log_softmax(z: np.ndarray) -> np.ndarray:
        z = z / t - np.max(z / t, axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))

    p = np.exp(log_softmax(old))
    return float(t * t * np.mean(np.sum(p * (log_softmax(old) - log_softmax(new)), axis=1)))


@pytest.mark.parametrize("temperature", [1.0, 2.0, 5.0])
def test_lwf_loss_equals_numpy_reference(temperature: float) -> None:
    rng = np.random.default_rng(2)
    old, new = (rng.normal(scale=3, size=(16, 10)).astype(np.float32) for _ in range(2))
    got = float(distillation_loss(tf.constant(old), tf.constant(new), temperature))
    assert np.isclose(got, _np_distillation(old.astype(np.float64), new.astype(np.float64), temperature),
                      rtol=1e-5, atol=1e-6)  # fmt: skip
    assert abs(float(distillation_loss(tf.constant(old), tf.constant(old), temperature))) < 1e-6
    # its gradient is the soft-target cross-entropy's: T · (softmax(new/T) − softmax(old/T)) / N
    x = tf.Variable(new)
    with tf.GradientTape() as tape:
        loss = distillation_loss(tf.constant(old), x, temperature)
    soft = lambda z: np.exp(z / temperature) / np.exp(z / temperature).sum(1, keepdims=True)
    np.testing.assert_allclose(tape.gradient(loss, x).numpy(),
                               temperature * (soft(new) - soft(old)) / len(new), atol=1e-6)  # fmt: skip


def test_lwf_is_off_in_task_1_and_distils_the_copy_taken_at_its_end(tmp_path: Path) -> None:
    spec = ExperimentSpec(**BASE, lwf={"alpha": 0.7, "temperature": 3.0})
    plain = train(ExperimentSpec(**BASE), dataset_cache=tmp_path)
    lwf = train(spec, dataset_cache=tmp_path)
    assert lwf["accuracy_matrix"][0] == plain["accuracy_matrix"][0]  # task 1: bit-identical
    assert lwf["epochs"][0]["loss"] == plain["epochs"][0]["loss"]
    assert lwf["accuracy_matrix"][1] != plain["accuracy_matrix"][1]
    tasks = _tasks(spec, tmp_path)
    learner = Learner(spec)
    _train_task(learner, tasks[0])
    learner.consolidate(tasks[0].train_x, tasks[0].train_y, 1)
    method = learner.methods["lwf"]
    for old, new in zip(method.old_variables, learner.model.variables):
        np.testing.assert_array_equal(old.numpy(), new.numpy())
    snapshot = [w.numpy().copy() for w in learner.model.variables]
    _train_task(learner, tasks[1])
    for old, snap, new in zip(method.old_variables, snapshot, learner.model.variables):
        np.testing.assert_array_equal(old.numpy(), snap)  # frozen while task 2 trains
    assert any(
        not np.array_equal(new.numpy(), snap)
        for snap, new in zip(snapshot, learner.model.variables)
    )
    from continual_core.methods.base import Step

    x = tf.constant(tasks[1].train_x[:50])
    old_logits = method.old(x, training=False).numpy()
    step = Step(x=x, y=None, logits=learner.model(x, training=True))
    want = 0.7 * _np_distillation(
        old_logits.astype(np.float64), step.logits.numpy().astype(np.float64), 3.0
    )
    assert want > 1e-4 and np.isclose(float(method.penalty(step)), want, rtol=1e-4)


def test_mas_lwf_ewc_incdet_compose_in_one_trace(tmp_path: Path) -> None:
    spec = ExperimentSpec(
        **{**BASE, "dataset_update": "increment"}, mas={}, lwf={}, ewc={}, incdet={}
    )
    assert set(spec.methods) == {"mas", "lwf", "ewc", "incdet"}
    learner = Learner(spec)
    tasks = _tasks(spec, tmp_path)
    assert len({len(t.train_y) for t in tasks}) == 3
    for task in tasks:
        _train_task(learner, task)
        learner.consolidate(task.train_x, task.train_y, task.index)
    assert learner.trace_count == 1 and learner._train_step.experimental_get_tracing_count() == 1
    mas_estimator = learner.estimators[MASImportance]
    assert mas_estimator.abs_gradient_sum.experimental_get_tracing_count() == 1
    assert int(learner.methods["lwf"].finished) == 3
    assert float(tf.reduce_sum(learner.methods["mas"].synapses.omega[0])) > 0
    state = learner.state()
    assert len(state["mas"]) == 2 * len(learner.weights)
    assert len(state["lwf"]) == len(learner.model.variables) + 1


def test_stop_then_resume_with_mas_and_lwf_is_bit_exact(tmp_path: Path) -> None:
    spec = ExperimentSpec(**{**BASE, "epochs": 6}, mas={"lambda": 0.5}, lwf={}, ewc={"lambda": 10.0},
                          incdet={"threshold": 1e-3}, augment=True, seed=3)  # fmt: skip
    whole = train(spec, dataset_cache=tmp_path)
    ckpt = tmp_path / "ckpt"
    with pytest.raises(Exception, match="stop"):
        train(spec, dataset_cache=tmp_path, callback=Recorder(stop_in_task=3), checkpoint_dir=ckpt)
    with np.load(ckpt / "task-2" / "state.npz") as saved:
        lwf_keys = sorted(k for k in saved if k.startswith("lwf/"))
        assert int(saved[lwf_keys[-1]]) == 2  # tasks finished, saved with the frozen copy
        assert len([k for k in saved if k.startswith("mas/")]) == 12  # Ω and θ* of 6 variables
    rec = Recorder()
    resumed = train(spec, dataset_cache=tmp_path, callback=rec, checkpoint_dir=ckpt)
    assert rec.starts[0].first_task == 3
    assert resumed["accuracy_matrix"] == whole["accuracy_matrix"]
    assert _rows(resumed) == _rows(whole)


def test_flags_and_validation() -> None:
    runner = CliRunner()
    helptext = runner.invoke(app, ["run", "--help"], env={"COLUMNS": "200"}).output
    for flag in (
        "--mas",
        "--mas-lambda",
        "--mas-samples",
        "--lwf",
        "--lwf-alpha",
        "--lwf-temperature",
    ):
        assert flag in helptext
    spec = ExperimentSpec(mas={}, lwf={})
    assert spec.to_json_dict()["mas"] == {"lambda": spec.mas.lambda_, "samples": 200}
    assert spec.to_json_dict()["lwf"] == {"alpha": 1.0, "temperature": 2.0}
    # MAS's default λ is 2 / T² for T tasks (documented; the best λ falls with T); a λ given stays
    for tasks, lam in ((3, 2 / 9), (10, 0.02)):
        stream = {"dataset_update": "permute", "splits": tasks, "epochs": tasks}
        assert np.isclose(ExperimentSpec(**stream, mas={}).mas.lambda_, lam)
        assert ExperimentSpec(**stream, mas={"lambda": 0.5}).mas.lambda_ == 0.5
    for bad in ({"mas": {"lambda": -1}}, {"lwf": {"temperature": 0}}, {"mas": {"samples": 0}}):
        with pytest.raises(ValidationError):
            ExperimentSpec(**bad)


def test_lwf_multi_head_distils_each_earlier_head_only() -> None:
    spec = ExperimentSpec(dataset="digits", dataset_update="switch", splits=5, epochs=5,
                          heads="multi", lwf={"temperature": 2.0})  # fmt: skip
    learner = Learner(spec)
    method = learner.methods["lwf"]
    assert method.groups == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
    rng = np.random.default_rng(3)
    for old in method.old_variables:  # an old model that differs from the new one
        old.assign(old + rng.normal(scale=0.1, size=old.shape).astype(np.float32))
    x = tf.constant(rng.random((12, *spec.input_shape)).astype(np.float32))
    from continual_core.methods.base import Step

    step = Step(x=x, y=None, logits=learner.model(x, training=True))
    old_logits = method.old(x, training=False).numpy().astype(np.float64)
    new_logits = step.logits.numpy().astype(np.float64)
    per_head = [_np_distillation(old_logits[:, g], new_logits[:, g], 2.0) for g in method.groups]
    assert float(method.penalty(step)) == 0.0  # task 1: off
    for finished in (1, 3):
        method.finished.assign(finished)
        assert np.isclose(float(method.penalty(step)), sum(per_head[:finished]), rtol=1e-4)
    assert not np.isclose(sum(per_head[:3]), _np_distillation(old_logits, new_logits, 2.0))


def test_a_sweep_grid_over_mas_and_lwf_fields_gives_valid_specs() -> None:
    from store.sweeps import expand_grid

    points = expand_grid({"dataset": "digits", "dataset_update": "permute", "splits": 3, "epochs": 3},
                         {"mas.lambda": [0.1, 1.0], "lwf.temperature": [1, 4]})  # fmt: skip
    specs = [ExperimentSpec.model_validate(s) for _, s in points]
    assert [(s.mas.lambda_, s.lwf.temperature, s.lwf.alpha) for s in specs] == [
        (0.1, 1, 1.0), (0.1, 4, 1.0), (1.0, 1, 1.0), (1.0, 4, 1.0)]  # fmt: skip
