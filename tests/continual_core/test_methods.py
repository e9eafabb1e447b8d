"""EWC in constant memory, FIM's truly frozen weights, IncDet's clipping, and one trace."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from continual_core.datasets import load_dataset
from continual_core.learner import Learner
from continual_core.methods.ewc import ElasticWeightConsolidation
from continual_core.methods.incdet import incdet_clip
from continual_core.spec import ExperimentSpec
from continual_core.tasks import make_tasks


def test_ewc_pair_penalty_equals_sum_of_per_task_quadratics() -> None:
    rng = np.random.default_rng(0)
    theta = [tf.Variable(rng.normal(size=(5, 3)).astype(np.float32)), tf.Variable(rng.normal(size=(3,)).astype(np.float32))]
    ewc = ElasticWeightConsolidation(theta, lam=7.0)
    per_task = []
    for _ in range(4):  # four finished tasks, each with its own Fisher and optimum
        fisher = [rng.random(v.shape).astype(np.float32) for v in theta]
        star = [rng.normal(size=v.shape).astype(np.float32) for v in theta]
        for v, s in zip(theta, star):
            v.assign(s)
        ewc.consolidate([tf.constant(f) for f in fisher], theta)
        per_task.append((fisher, star))
    for v in theta:
        v.assign(rng.normal(size=v.shape).astype(np.float32))
    expected = 0.5 * 7.0 * sum(
        np.sum(f * (v.numpy() - s) ** 2) for fisher, star in per_task for f, v, s in zip(fisher, theta, star)
    )
    assert np.isclose(float(ewc.penalty(theta)), expected, rtol=1e-4)
    # the state is one pair per variable plus a scalar, whatever the number of tasks
    assert len(ewc.state) == 2 * len(theta) + 1
    with tf.GradientTape() as tape:
        p = ewc.penalty(theta)
    grads = tape.gradient(p, theta)
    for g, v, i in zip(grads, theta, range(2)):
        want = 7.0 * sum(fisher[i] * (v.numpy() - star[i]) for fisher, star in per_task)
        np.testing.assert_allclose(g.numpy(), want, rtol=1e-4, atol=1e-4)


def test_incdet_clip_formula() -> None:
    g = tf.constant([-3.0, -0.5, 0.0, 0.2, 1.0, 4.0])
    (clipped,) = incdet_clip([g], threshold=1.0)
    np.testing.assert_allclose(clipped.numpy(), [-1.0, -0.5, 0.0, 0.2, 1.0, 1.0])
    (tiny,) = incdet_clip([g], threshold=1e-6)
    np.testing.assert_allclose(tiny.numpy(), np.sign(g.numpy()) * np.minimum(np.abs(g.numpy()), 1e-6))


def _digits_tasks(tmp_path: Path, **kw) -> tuple[ExperimentSpec, list]:
    spec = ExperimentSpec(dataset="digits", splits=3, epochs=3, **kw)
    return spec, make_tasks(spec, load_dataset(spec, tmp_path))


def _run_task(learner: Learner, task, epochs: int = 2) -> None:
    learner.start_task(task.index)
    x, y = tf.constant(task.train_x), tf.constant(task.train_y)
    for e in range(epochs):
        order = np.random.default_rng(e).permutation(len(task.train_y))
        learner.train_epoch(x, y, order, lambda: False)


def test_fim_frozen_weights_bit_identical_after_later_tasks(tmp_path: Path) -> None:
    spec, tasks = _digits_tasks(tmp_path, dataset_update="permute", fim={"threshold": 1e-4}, learning_rate=0.01)
    learner = Learner(spec)
    _run_task(learner, tasks[0])
    frozen_fraction = learner.consolidate(tasks[0].train_x, tasks[0].train_y, 1)["frozen_fraction"]
    assert 0.0 < frozen_fraction < 1.0
    masks = [m.numpy() for m in learner.methods["fim"].masking.frozen]
    before = [w.numpy().copy() for w in learner.weights]
    _run_task(learner, tasks[1])
    learner.consolidate(tasks[1].train_x, tasks[1].train_y, 2)
    _run_task(learner, tasks[2])
    moved = 0
    for m, b, w in zip(masks, before, learner.weights):
        after = w.numpy()
        assert np.array_equal(after[m], b[m])  # bit-identical, despite Adam's momentum
        moved += int(np.sum(after[~m] != b[~m]))
    assert moved > 0  # the free weights did train
    # masks are OR-ed: everything frozen after task 1 is still frozen
    assert all(np.all(new.numpy()[old]) for new, old in zip(learner.methods["fim"].masking.frozen, masks))


def test_nothing_retraced_across_tasks_of_different_sizes(tmp_path: Path) -> None:
    spec, tasks = _digits_tasks(tmp_path, dataset_update="increment", ewc={}, fim={}, incdet={})
    learner = Learner(spec)
    assert len({len(t.train_y) for t in tasks}) == 3
    for task in tasks:
        _run_task(learner, task, epochs=2)
        learner.accuracy(tf.constant(task.val_x), task.val_y, [0, len(task.val_y)])
        learner.consolidate(task.train_x, task.train_y, task.index)
    assert learner.trace_count == 1
    assert learner._train_step.experimental_get_tracing_count() == 1
    assert learner._predict.experimental_get_tracing_count() == 1
    assert learner.fisher.squared_gradient_sum.experimental_get_tracing_count() == 1
    assert float(tf.reduce_sum(learner.methods["ewc"].quadratic.fisher_sum[0])) > 0


def test_reset_optimizer_zeroes_adam_state(tmp_path: Path) -> None:
    spec, tasks = _digits_tasks(tmp_path, dataset_update="permute", reset_optimizer=True)
    learner = Learner(spec)
    _run_task(learner, tasks[0], epochs=1)
    assert int(learner.optimizer.iterations) > 0
    learner.start_task(2)
    assert int(learner.optimizer.iterations) == 0
    assert all(not np.any(v.numpy()) for v in learner.optimizer.variables if "momentum" in v.path)
    assert np.isclose(float(learner.optimizer.learning_rate), spec.learning_rate)
