"""EWC's penalty inside the compiled training step (not only `ElasticWeightConsolidation` alone).

After task 1 (trained, then consolidated: Fisher F and anchor θ* stored), the step on task 2

- reports a loss equal to the cross-entropy + λ/2 · Σ F (θ − θ*)², both recomputed here in
  float64 NumPy from F (re-estimated with the same seeds) and the θ* snapshot;
- moves the important weights (high F) far less from θ* than the same training without
  the penalty (the same learner, same state, with the EWC state zeroed), and with plain
  SGD one step differs from the unpenalised one by exactly lr · λ F (θ − θ*).
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from continual_core.datasets import load_dataset
from continual_core.learner import Learner
from continual_core.spec import ExperimentSpec
from continual_core.tasks import make_tasks
from tests.continual_core.numpy_mlp import cross_entropy

LAMBDA = 300.0
SAMPLES = 200


def _spec() -> ExperimentSpec:
    return ExperimentSpec(
        dataset="digits", dataset_update="permute", splits=2, epochs=2, batch_size=64,
        learning_rate=0.01, ewc={"lambda": LAMBDA, "samples": SAMPLES}, seed=4,
    )  # fmt: skip


def _after_task_1(tmp_path: Path, optimizer: keras.optimizers.Optimizer | None = None):
    """A learner trained on task 1 and consolidated, with F and θ* as NumPy arrays."""
    spec = _spec()
    tasks = make_tasks(spec, load_dataset(spec, tmp_path))
    learner = Learner(spec)
    if optimizer is not None:  # before the first step: the compiled step is traced with it
        optimizer.build(learner.weights)
        learner.optimizer = optimizer
    learner.start_task(1)
    x, y = tf.constant(tasks[0].train_x), tf.constant(tasks[0].train_y)
    order = np.random.default_rng(0).permutation(len(tasks[0].train_y))
    learner.train_epoch(x, y, order, lambda: False)
    # the Fisher consolidate() will use: the same examples and seeds, so the same values
    fisher = [
        f.numpy() for f in learner.estimate_fisher(tasks[0].train_x, tasks[0].train_y, 1, SAMPLES)
    ]
    anchor = [w.numpy().copy() for w in learner.weights]
    learner.consolidate(tasks[0].train_x, tasks[0].train_y, 1)
    for a, f in zip(learner.methods["ewc"].quadratic.fisher_sum, fisher):  # stored as given
        np.testing.assert_array_equal(a.numpy(), f)
    learner.start_task(2)
    return learner, tasks[1], fisher, anchor


def _penalty(theta: list[np.ndarray], fisher: list[np.ndarray], anchor: list[np.ndarray]) -> float:
    return (
        0.5
        * LAMBDA
        * sum(
            float(np.sum(f.astype(np.float64) * (t.astype(np.float64) - s) ** 2))
            for t, f, s in zip(theta, fisher, anchor)
        )
    )


def test_step_loss_is_cross_entropy_plus_the_penalty(tmp_path: Path) -> None:
    learner, task, fisher, anchor = _after_task_1(tmp_path)
    rng = np.random.default_rng(5)
    for w, s in zip(learner.weights, anchor):  # away from θ*, where the penalty is 0
        w.assign(s + rng.normal(0.0, 0.05, s.shape).astype(np.float32))
    theta = [w.numpy() for w in learner.weights]
    idx = np.arange(64, dtype=np.int32)
    x, y = task.train_x[idx], task.train_y[idx]
    penalty = _penalty(theta, fisher, anchor)
    ce = cross_entropy(theta, x, y)
    assert penalty > ce > 0.1  # the penalty is a large part of the loss here
    np.testing.assert_allclose(float(learner.methods["ewc"].quadratic.penalty(learner.weights)), penalty, rtol=1e-5)
    loss = learner._train_step(
        tf.constant(task.train_x), tf.constant(task.train_y), tf.constant(idx)
    )
    np.testing.assert_allclose(float(loss), ce + penalty, rtol=1e-5)


def _snapshot(learner: Learner) -> list[np.ndarray]:
    return [v.numpy().copy() for group in learner.state().values() for v in group]


def _restore(learner: Learner, values: list[np.ndarray]) -> None:
    for v, value in zip([v for group in learner.state().values() for v in group], values):
        v.assign(value)


def _train_task_2(learner: Learner, task, steps: int | None = None) -> list[np.ndarray]:
    x, y = tf.constant(task.train_x), tf.constant(task.train_y)
    order = np.random.default_rng(1).permutation(len(task.train_y))
    if steps is not None:  # batches of 64
        order = order[: steps * 64]
    learner.train_epoch(x, y, order, lambda: False)
    return [w.numpy().copy() for w in learner.weights]


def _without_penalty(learner: Learner) -> None:
    """Zero the EWC state (A, B, c): the same compiled step, with a penalty of 0."""
    for v in learner.methods["ewc"].quadratic.state:
        v.assign(tf.zeros(v.shape, v.dtype))


def test_penalty_holds_important_weights_near_the_anchor(tmp_path: Path) -> None:
    """One epoch of task 2 under the production Adam, with and without the penalty."""
    learner, task, fisher, anchor = _after_task_1(tmp_path)
    state = _snapshot(learner)
    with_ewc = _train_task_2(learner, task)
    _restore(learner, state)
    _without_penalty(learner)
    plain = _train_task_2(learner, task)
    f_all = np.concatenate([f.ravel() for f in fisher])
    important = [f >= np.quantile(f_all, 0.95) for f in fisher]  # the top 5 % of the Fisher

    def moved(theta: list[np.ndarray], where: list[np.ndarray]) -> float:
        return float(
            np.mean(np.concatenate([np.abs(t - s)[m] for t, s, m in zip(theta, anchor, where)]))
        )

    held, free = moved(with_ewc, important), moved(plain, important)
    assert held < 0.5 * free, (held, free)
    assert _penalty(with_ewc, fisher, anchor) < 0.5 * _penalty(plain, fisher, anchor)
    unimportant = [f == 0 for f in fisher]  # no Fisher, no pull: these still train
    if any(m.any() for m in unimportant):
        assert moved(with_ewc, unimportant) > 0


def test_one_sgd_step_adds_exactly_lambda_f_theta_minus_anchor(tmp_path: Path) -> None:
    """With SGD (test only), Δθ = −lr·(∇CE + λF(θ−θ*)): the penalised and the unpenalised
    step from the same θ differ by exactly −lr·λF(θ−θ*)."""
    lr = 0.05
    learner, task, fisher, anchor = _after_task_1(tmp_path, keras.optimizers.SGD(learning_rate=lr))
    rng = np.random.default_rng(6)
    for w, s in zip(learner.weights, anchor):
        w.assign(s + rng.normal(0.0, 0.05, s.shape).astype(np.float32))
    start = _snapshot(learner)
    theta = [w.numpy().copy() for w in learner.weights]
    with_ewc = _train_task_2(learner, task, steps=1)
    _restore(learner, start)
    _without_penalty(learner)
    plain = _train_task_2(learner, task, steps=1)
    for e, p, t, f, s in zip(with_ewc, plain, theta, fisher, anchor):
        expected = -lr * LAMBDA * f * (t - s)
        np.testing.assert_allclose(
            e - p, expected, atol=1e-6 + 1e-3 * float(np.max(np.abs(expected)))
        )
    assert (
        max(
            float(np.max(np.abs(-lr * LAMBDA * f * (t - s))))
            for t, f, s in zip(theta, fisher, anchor)
        )
        > 1e-3
    )
