"""Model shapes and parameter counts; the vectorised Fisher against a per-example loop."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from continual_core.fisher import FisherDiagonal, fisher_naive
from continual_core.models import build_augmenter, build_model
from continual_core.spec import ExperimentSpec

CIFAR_SHAPE = {"height": 32, "width": 32, "channels": 3, "classes": 10, "train_size": 20, "test_size": 10}


@pytest.mark.parametrize(("model", "params"), [("mlp", 89_610), ("lenet", 61_706)])
def test_original_parameter_counts_on_mnist(model: str, params: int) -> None:
    net = build_model(ExperimentSpec(model=model, dataset="mnist-5k"))
    assert net.count_params() == params
    assert net.output_shape == (None, 10)


@pytest.mark.parametrize("model", ["lenet", "cifarnet"])
def test_cnns_on_synthetic_cifar_shape(model: str) -> None:
    spec = ExperimentSpec(model=model, dataset="synthetic", synthetic=CIFAR_SHAPE)
    net = build_model(spec)
    assert net.input_shape == (None, 32, 32, 3)
    logits = net(np.zeros((2, 32, 32, 3), np.float32), training=False)
    assert logits.shape == (2, 10)


def test_cifarnet_structure_and_cifar_normalisation() -> None:
    net = build_model(ExperimentSpec(model="cifarnet", dataset="cifar100"))
    names = [type(layer).__name__ for layer in net.layers]
    assert names.count("Conv2D") == 8 and names.count("BatchNormalization") == 8
    assert names.count("Dropout") == 2 and "Normalization" in names and net.output_shape == (None, 100)
    plain = build_model(ExperimentSpec(model="cifarnet", dataset="synthetic", synthetic=CIFAR_SHAPE))
    assert "Normalization" not in [type(layer).__name__ for layer in plain.layers]


def test_augmenter_only_when_asked_and_flip_only_for_colour() -> None:
    assert build_augmenter(ExperimentSpec(dataset="digits")) is None
    grey = build_augmenter(ExperimentSpec(dataset="digits", augment=True))
    colour = build_augmenter(ExperimentSpec(model="cifarnet", dataset="synthetic", synthetic=CIFAR_SHAPE, augment=True))
    assert [type(x).__name__ for x in grey.layers] == ["RandomTranslation"]
    assert [type(x).__name__ for x in colour.layers] == ["RandomTranslation", "RandomFlip"]


@pytest.mark.parametrize("estimator", ["empirical", "sampled", "seed"])
def test_vectorised_fisher_equals_per_example_loop(estimator: str) -> None:
    keras.utils.set_random_seed(0)
    spec = ExperimentSpec(model="mlp", dataset="digits")
    net = build_model(spec)
    rng = np.random.default_rng(0)
    x = rng.random((40, 8, 8, 1), dtype=np.float32)
    y = rng.integers(0, 10, 40).astype(np.int32)
    fisher = FisherDiagonal(net, estimator)
    fast = fisher.estimate(x, y, (3, 4))
    labels = fisher.labels(tf.constant(x), tf.constant(y), tf.constant([3, 4])).numpy()
    if estimator == "sampled":
        assert not np.array_equal(labels, y)  # drawn from the model, not the true labels
    slow = fisher_naive(net, x, labels, estimator)
    for a, b in zip(fast, slow):
        np.testing.assert_allclose(a.numpy(), b, rtol=1e-4, atol=1e-8)
    assert all(float(tf.reduce_max(a)) > 0 for a in fast)


def test_fisher_chunks_add_up(monkeypatch: pytest.MonkeyPatch) -> None:
    import continual_core.fisher as fm

    keras.utils.set_random_seed(1)
    net = build_model(ExperimentSpec(model="mlp", dataset="digits"))
    x = np.random.default_rng(1).random((30, 8, 8, 1), dtype=np.float32)
    y = np.arange(30, dtype=np.int32) % 10
    whole = FisherDiagonal(net, "empirical").estimate(x, y, (0, 0))
    monkeypatch.setattr(fm, "MAX_JACOBIAN_FLOATS", 8 * 10_000)  # chunks of 7 examples
    chunked = FisherDiagonal(net, "empirical").estimate(x, y, (0, 0))
    for a, b in zip(whole, chunked):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-9)
