"""The vectorised Fisher against an independent float64 NumPy computation.

`fisher_naive` (test_models_fisher.py) shares `per_example_loss` with the fast path, so a
wrong label or a wrong loss in it would pass that test. Here nothing of TensorFlow is used
for the reference: an explicit forward pass of the dense MLP, an explicit log-softmax, the
analytic per-example gradients (back-propagation written out), squared and averaged:

    F_i = (1/N) Σ_n (∂ℓ_n/∂θ_i)²,   ℓ_n = −log p(y_n|x_n)  (empirical; sampled: y_n drawn)
                                    ℓ_n = −Σ_c log p(c|x_n)  (seed)

For `sampled`, one draw is compared exactly (labels taken from the estimator) and the mean
over many draws is compared with the exact expectation Σ_c p(c|x) (∂ℓ_c/∂θ)² (the true
Fisher), which a label that is not drawn from the model would miss.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from continual_core.fisher import FisherDiagonal
from continual_core.models import build_model
from continual_core.spec import ExperimentSpec
from tests.continual_core.numpy_mlp import reference_fisher, true_fisher

N = 40


def _confident_mlp() -> keras.Model:
    """The production digits MLP (64 → 100 → 100 → 10), with non-zero biases and a scaled-up
    output layer so p(c|x) is far from uniform (the estimators then differ clearly)."""
    keras.utils.set_random_seed(0)
    net = build_model(ExperimentSpec(model="mlp", dataset="digits"))
    rng = np.random.default_rng(1)
    weights = net.get_weights()  # W1, b1, W2, b2, W3, b3
    for i in (1, 3, 5):
        weights[i] = rng.normal(0.0, 0.1, weights[i].shape).astype(np.float32)
    weights[4] = weights[4] * 6.0
    net.set_weights(weights)
    return net


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(2)
    return rng.random((N, 8, 8, 1), dtype=np.float32), rng.integers(0, 10, N).astype(np.int32)


def _assert_close(fast: list[tf.Tensor], ref: list[np.ndarray], rtol: float) -> None:
    assert len(fast) == len(ref) == 6
    for i, (a, b) in enumerate(zip(fast, ref)):
        a = a.numpy().astype(np.float64)
        assert a.shape == b.shape, i
        scale = float(np.max(np.abs(b)))
        assert scale > 0, f"variable {i}: the reference Fisher is all zero"
        np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-6 * scale, err_msg=f"variable {i}")


@pytest.mark.parametrize("estimator", ["empirical", "seed", "sampled"])
def test_vectorised_fisher_equals_float64_numpy_reference(estimator: str) -> None:
    net = _confident_mlp()
    x, y = _data()
    fisher = FisherDiagonal(net, estimator)
    fast = fisher.estimate(x, y, (5, 6))
    if estimator == "sampled":  # the same draw the estimate used (labels() is seeded)
        labels = fisher.labels(tf.constant(x), tf.constant(y), tf.constant([5, 6])).numpy()
        assert labels.shape == (N,) and not np.array_equal(labels, y)
    else:
        labels = y
    _assert_close(fast, reference_fisher(net.get_weights(), x, labels, estimator), rtol=1e-4)


def test_estimators_differ_on_this_model() -> None:
    """Sanity of the setup: each estimator's reference differs from the others by far more
    than the tolerance above, so using another one's loss cannot pass."""
    net = _confident_mlp()
    x, y = _data()
    w = net.get_weights()
    emp = reference_fisher(w, x, y, "empirical")
    seed = reference_fisher(w, x, y, "seed")
    true = true_fisher(w, x)
    for a, b in [(emp, seed), (emp, true), (seed, true)]:
        assert abs(a[4].sum() / b[4].sum() - 1.0) > 0.2


def test_sampled_fisher_averages_to_the_true_fisher() -> None:
    """Labels drawn from the model: the mean of many sampled estimates tends to the exact
    model Fisher Σ_c p(c|x)(∂ℓ_c/∂θ)², not to the true-label (empirical) one."""
    net = _confident_mlp()
    x, y = _data()
    fisher = FisherDiagonal(net, "sampled")
    draws = 200
    mean = [np.zeros(v.shape) for v in net.trainable_variables]
    for k in range(draws):
        mean = [m + e.numpy() / draws for m, e in zip(mean, fisher.estimate(x, y, (k, 7)))]
    true = true_fisher(net.get_weights(), x)
    emp = reference_fisher(net.get_weights(), x, y, "empirical")
    for i in range(6):
        ratio = mean[i].sum() / true[i].sum()
        assert abs(ratio - 1.0) < 0.05, (i, ratio)
        assert abs(emp[i].sum() / true[i].sum() - 1.0) > 0.2, i  # the wrong label would show
