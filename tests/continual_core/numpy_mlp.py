"""A dense ReLU MLP in float64 NumPy, written out by hand: forward pass, log-softmax, loss and
per-example gradients (back-propagation), for tests that must not share any TensorFlow code
with the training core. Weights are Keras' order for the `mlp` model: W1, b1, W2, b2, W3, b3.
"""

from __future__ import annotations

import numpy as np


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
        np.square(f["a0"]).T @ np.square(delta1),
        np.square(delta1).sum(0),
        np.square(f["a1"]).T @ np.square(delta2),
        np.square(delta2).sum(0),
        np.square(f["a2"]).T @ np.square(delta3),
        np.square(delta3).sum(0),
    ]


def reference_fisher(
    weights: list[np.ndarray], x: np.ndarray, labels: np.ndarray, estimator: str
) -> list[np.ndarray]:
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


def cross_entropy(weights: list[np.ndarray], x: np.ndarray, y: np.ndarray) -> float:
    """Mean over the examples of −log p(y|x) (float64)."""
    log_p = _forward(weights, x)["log_p"]
    return float(-np.mean(log_p[np.arange(len(y)), y]))
