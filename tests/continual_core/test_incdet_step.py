"""IncDet's clipping inside the compiled training step (`incdet_clip` alone is tested in
test_methods.py).

With SGD at lr = 1 swapped in before the first step (test only: the compiled step is traced
with it), a weight's change IS the gradient the step applied, so "no applied gradient element
exceeds b" can be read off the weights. Under the production Adam, clipped training differs
from unclipped training.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from continual_core.datasets import load_dataset
from continual_core.learner import Learner
from continual_core.spec import ExperimentSpec
from continual_core.tasks import make_tasks

STEPS, BATCH = 4, 64


def _learner(tmp_path: Path, sgd: bool, **kw) -> tuple[Learner, tf.Tensor, tf.Tensor]:
    spec = ExperimentSpec(
        dataset="digits", epochs=1, batch_size=BATCH, seed=2, learning_rate=0.01, **kw
    )
    (task,) = make_tasks(spec, load_dataset(spec, tmp_path))
    learner = Learner(spec)
    if sgd:  # Δθ = −1 · (the gradient the step hands to the optimizer)
        learner.optimizer = keras.optimizers.SGD(learning_rate=1.0)
        learner.optimizer.build(learner.weights)
    learner.start_task(1)
    return learner, tf.constant(task.train_x), tf.constant(task.train_y)


def _applied_gradients(
    learner: Learner, x: tf.Tensor, y: tf.Tensor
) -> list[list[tuple[np.ndarray, np.ndarray]]]:
    """Per step: (weights before, weights before − weights after = the applied gradient)."""
    steps = []
    for k in range(STEPS):
        before = [w.numpy().copy() for w in learner.weights]
        learner._train_step(x, y, tf.range(k * BATCH, (k + 1) * BATCH, dtype=tf.int32))
        steps.append([(b, b - w.numpy()) for b, w in zip(before, learner.weights)])
    return steps


def _rounding(before: np.ndarray, applied: np.ndarray, b: float) -> np.ndarray:
    """Float32 rounding of reading g back as θ − (θ − g): an ulp of the larger weight (twice,
    when two such readings are compared), plus a few ulps of b from the clip's arithmetic."""
    return 2 * np.spacing(np.abs(before) + np.abs(applied)) + 1e-6 * b


@pytest.mark.parametrize("b", [1e-3, 1e-6])
def test_no_applied_gradient_element_exceeds_b(tmp_path: Path, b: float) -> None:
    clipped, x, y = _learner(tmp_path, sgd=True, incdet={"threshold": b})
    plain, _, _ = _learner(tmp_path, sgd=True)
    for c, p in zip(clipped.weights, plain.weights):  # same seed, same initial weights
        np.testing.assert_array_equal(c.numpy(), p.numpy())
    clipped_steps = _applied_gradients(clipped, x, y)
    first_plain = _applied_gradients(plain, x, y)[0]
    for step in clipped_steps:
        for before, applied in step:
            assert np.all(np.abs(applied) <= b + _rounding(before, applied, b)), float(
                np.max(np.abs(applied))
            )
    # the clip was needed (raw gradients are far above b) and is g·b/max(b, |g|) exactly
    raw = np.concatenate([g.ravel() for _, g in first_plain])
    assert np.max(np.abs(raw)) > 10 * b
    for (before, applied), (_, g) in zip(clipped_steps[0], first_plain):
        expected = g * (b / np.maximum(b, np.abs(g)))
        assert np.all(np.abs(applied - expected) <= _rounding(before, applied, b))


def test_clipped_training_differs_from_unclipped_under_adam(tmp_path: Path) -> None:
    clipped, x, y = _learner(tmp_path, sgd=False, incdet={"threshold": 1e-3})
    plain, _, _ = _learner(tmp_path, sgd=False)
    order = np.random.default_rng(0).permutation(int(y.shape[0]))
    loss_c = clipped.train_epoch(x, y, order, lambda: False)
    loss_p = plain.train_epoch(x, y, order, lambda: False)
    diff = max(
        float(np.max(np.abs(c.numpy() - p.numpy()))) for c, p in zip(clipped.weights, plain.weights)
    )
    assert diff > 1e-3, diff
    assert loss_c != loss_p
