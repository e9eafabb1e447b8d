"""MAS: its importance against per-example references (an eager loop and a hand-written
NumPy back-propagation), its accumulated penalty, its default λ, one trace, bit-exact resume."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from pydantic import ValidationError
from typer.testing import CliRunner

from cli.main import app
from continual_core.datasets import load_dataset
from continual_core.events import StopRequested
from continual_core.learner import Learner
from continual_core.methods.mas import MASImportance, MemoryAwareSynapses, mas_importance_naive
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


def _mlp_abs_gradients(weights: list[np.ndarray], x: np.ndarray) -> list[np.ndarray]:
    """MAS's Ω for the Dense ReLU MLP, back-propagated by hand in float64:
    ∂‖z3‖²/∂z3 = 2 z3, and Σ_n |a_n,i δ_n,j| = (|a|ᵀ|δ|)_ij."""
    w1, b1, w2, b2, w3, b3 = (np.asarray(w, np.float64) for w in weights)
    a0 = x.reshape(len(x), -1).astype(np.float64)
    z1 = a0 @ w1 + b1
    a1 = np.maximum(z1, 0)
    z2 = a1 @ w2 + b2
    a2 = np.maximum(z2, 0)
    d3 = 2 * (a2 @ w3 + b3)
    d2 = (d3 @ w3.T) * (z2 > 0)
    d1 = (d2 @ w2.T) * (z1 > 0)
    sums = [np.abs(a0).T @ np.abs(d1), np.abs(d1).sum(0), np.abs(a1).T @ np.abs(d2),
            np.abs(d2).sum(0), np.abs(a2).T @ np.abs(d3), np.abs(d3).sum(0)]  # fmt: skip
    return [s / len(x) for s in sums]


def test_mas_importance_equals_per_example_references(tmp_path: Path) -> None:
    spec = ExperimentSpec(**BASE, mas={"samples": 40})
    tasks = _tasks(spec, tmp_path)
    learner = Learner(spec)
    _train_task(learner, tasks[0])  # away from the initialisation: ReLUs on and off
    x = tasks[0].train_x[:40]
    estimator = MASImportance(learner.model, spec)
    vectorised = [v.numpy() for v in estimator.importance(x)]
    loop = mas_importance_naive(learner.model, x)  # one GradientTape per example
    by_hand = _mlp_abs_gradients([w.numpy() for w in learner.weights], x)
    for v, n, h in zip(vectorised, loop, by_hand):
        assert v.shape == n.shape == h.shape and np.all(v >= 0)
        np.testing.assert_allclose(v, n, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(v, h, rtol=1e-3, atol=1e-5)
    # the mean of per-example magnitudes, not the magnitude of the batch gradient
    with tf.GradientTape() as tape:
        batch = tf.reduce_sum(tf.square(learner.model(x, training=False)))
    pooled = tape.gradient(batch, learner.weights)[0].numpy() / len(x)
    assert np.sum(np.abs(pooled)) < 0.99 * np.sum(vectorised[0])
    # what the learner hands end_task: `samples` examples drawn with the (seed, task) stream
    again = learner.consolidate(tasks[0].train_x, tasks[0].train_y, 1)
    assert again == {}
    omega = [o.numpy() for o in learner.methods["mas"].synapses.omega]
    expected = estimator.estimate(tasks[0].train_x, tasks[0].train_y, 1, 40)
    for o, e in zip(omega, expected):
        np.testing.assert_array_equal(o, e.numpy())


def test_mas_penalty_accumulates_importance_and_moves_the_anchor() -> None:
    rng = np.random.default_rng(1)
    theta = [tf.Variable(rng.normal(size=(4, 3)).astype(np.float32)),
             tf.Variable(rng.normal(size=(3,)).astype(np.float32))]  # fmt: skip
    mas = MemoryAwareSynapses(theta, lam=3.0)
    assert float(mas.penalty(theta)) == 0.0  # nothing finished yet
    omegas = []
    for _ in range(3):
        omega = [rng.random(v.shape).astype(np.float32) for v in theta]
        for v in theta:
            v.assign(rng.normal(size=v.shape).astype(np.float32))
        anchor = [v.numpy().copy() for v in theta]
        mas.consolidate([tf.constant(o) for o in omega], theta)
        omegas.append(omega)
    for v in theta:
        v.assign(rng.normal(size=v.shape).astype(np.float32))
    total = [sum(o[i] for o in omegas) for i in range(2)]
    want = 3.0 * sum(np.sum(o * (v.numpy() - a) ** 2) for o, v, a in zip(total, theta, anchor))
    assert np.isclose(float(mas.penalty(theta)), want, rtol=1e-5)


def test_mas_default_lambda_scales_with_the_number_of_tasks() -> None:
    # documented: 2 / T² for T tasks (the best λ falls with T); a λ given is kept
    for tasks, lam in ((3, 2 / 9), (10, 0.02)):
        stream = {"dataset_update": "permute", "splits": tasks, "epochs": tasks}
        assert np.isclose(ExperimentSpec(**stream, mas={}).mas.lambda_, lam)
        assert ExperimentSpec(**stream, mas={"lambda": 0.5}).mas.lambda_ == 0.5
    assert ExperimentSpec(mas={}).to_json_dict()["mas"] == {"lambda": 2.0, "samples": 200}
    for bad in ({"lambda": -1}, {"samples": 0}, {"lamda": 1}):
        with pytest.raises(ValidationError):
            ExperimentSpec(mas=bad)
    helptext = CliRunner().invoke(app, ["run", "--help"], env={"COLUMNS": "200"}).output
    assert "--mas-lambda" in helptext and "--mas-samples" in helptext


def test_mas_with_ewc_and_incdet_traces_once_and_resumes_bit_exact(tmp_path: Path) -> None:
    spec = ExperimentSpec(**{**BASE, "dataset_update": "increment", "epochs": 6}, mas={"lambda": 0.5},
                          ewc={"lambda": 10.0}, incdet={"threshold": 1e-3}, augment=True, seed=3)  # fmt: skip
    learner = Learner(spec)
    tasks = _tasks(spec, tmp_path)
    assert len({len(t.train_y) for t in tasks}) == 3
    for task in tasks:
        _train_task(learner, task)
        learner.consolidate(task.train_x, task.train_y, task.index)
    assert learner._train_step.experimental_get_tracing_count() == 1
    assert learner.estimators[MASImportance].abs_gradient_sum.experimental_get_tracing_count() == 1
    assert len(learner.state()["mas"]) == 2 * len(learner.weights)
    whole = train(spec, dataset_cache=tmp_path)
    ckpt = tmp_path / "ckpt"
    with pytest.raises(StopRequested):
        train(spec, dataset_cache=tmp_path, callback=Recorder(stop_in_task=3), checkpoint_dir=ckpt)
    with np.load(ckpt / "task-2" / "state.npz") as saved:
        omega = saved["mas/0000"]
    assert omega.shape == learner.weights[0].shape and omega.sum() > 0
    rec = Recorder()
    resumed = train(spec, dataset_cache=tmp_path, callback=rec, checkpoint_dir=ckpt)
    assert rec.starts[0].first_task == 3
    assert resumed["accuracy_matrix"] == whole["accuracy_matrix"]
    assert _rows(resumed) == _rows(whole)
