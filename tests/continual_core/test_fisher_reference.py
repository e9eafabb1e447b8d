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


def _forward(weights: list[np.ndarray], x: np.ndarray) -> dict[str, np.ndarray]:
    """Dense ReLU MLP in float64: activations and the log-softmax of the logits."""
    w1, b1, w2, b2, w3, b3 = (np.asarray(w, np.float64) for w in weights)
    a0 = x.reshape(len(x), -1).astype(np.float64)
    z1 = a0 @ w1 + b1
    a1 = np.maximum(z1, 0.0)
    z2 = a1 @ w2 + b2
    a2 = np.maximum(z2, 0.0)
    z3 = a2 @ w3 + b3
    m = z3.max(axis=1, keepdims=True)
    log_p = z3 - (m + np.log(np.exp(z3 - m).sum(axis=1, keepdims=True)))
    return {"a0": a0, "z1": z1, "a1": a1, "z2": z2, "a2": a2, "log_p": log_p, "w2": w2, "w3": w3}


def _squared_grads(f: dict[str, np.ndarray], delta3: np.ndarray) -> list[np.ndarray]:
    """Σ_n (∂ℓ_n/∂θ)² per variable, given δ3_n = ∂ℓ_n/∂logits (back-propagated by hand)."""
    delta2 = (delta3 @ f["w3"].T) * (f["z2"] > 0)
    delta1 = (delta2 @ f["w2"].T) * (f["z1"] > 0)
    # (∂ℓ_n/∂W)_ij = a_n,i δ_n,j, so Σ_n of its square is (a²)ᵀ (δ²)
    return [
        np.square(f["a0"]).T @ np.square(delta1), np.square(delta1).sum(0),
        np.square(f["a1"]).T @ np.square(delta2), np.square(delta2).sum(0),
        np.square(f["a2"]).T @ np.square(delta3), np.square(delta3).sum(0),
    ]


def reference_fisher(weights: list[np.ndarray], x: np.ndarray, labels: np.ndarray, estimator: str) -> list[np.ndarray]:
    """The diagonal Fisher in float64 NumPy (labels: the label each loss uses)."""
    f = _forward(weights, x)
    p = np.exp(f["log_p"])
    classes = p.shape[1]
    if estimator == "seed":  # ℓ = −Σ_c (z_c − logsumexp z)  ⇒  ∂ℓ/∂z = C·softmax − 1
        delta3 = classes * p - 1.0
    else:  # ℓ = −(z_y − logsumexp z)  ⇒  ∂ℓ/∂z = softmax − onehot(y)
        delta3 = p - np.eye(classes)[labels]
    return [g / len(x) for g in _squared_grads(f, delta3)]


def true_fisher(weights: list[np.ndarray], x: np.ndarray) -> list[np.ndarray]:
    """E over ŷ ~ p(·|x) of the squared gradient of −log p(ŷ|x), exactly (float64)."""
    f = _forward(weights, x)
    p = np.exp(f["log_p"])
    total = [np.zeros(np.shape(w)) for w in weights]
    for c in range(p.shape[1]):
        delta3 = p - np.eye(p.shape[1])[np.full(len(x), c)]
        # weight example n's squared gradient by p(c|x_n): scale δ by √p (every term is a square)
        scaled = _squared_grads(f, delta3 * np.sqrt(p[:, c : c + 1]))
        total = [t + s for t, s in zip(total, scaled)]
    return [t / len(x) for t in total]


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
