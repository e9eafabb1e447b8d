"""The analytic Fisher of dense chains (`continual_core.fisher_dense`) against the
per-example loop (`fisher_naive`) and the vectorised path, every estimator, one shared head
and `heads: multi`; which models take which path."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import continual_core.fisher as fm
from continual_core.fisher import FisherDiagonal, fisher_naive
from continual_core.fisher_dense import DenseChain
from continual_core.heads import head_layout
from continual_core.models import build_model
from continual_core.spec import ExperimentSpec

N = 37


def _spec(heads: str) -> ExperimentSpec:
    return ExperimentSpec(model="mlp", dataset="digits", dataset_update="permute", splits=3, heads=heads)


def _data(width: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((N, 8, 8, 1), dtype=np.float32), rng.integers(0, width, N).astype(np.int32)


def _close(got: list[tf.Tensor], want: list[np.ndarray], rtol: float = 1e-4) -> None:
    assert len(got) == len(want)
    for i, (a, b) in enumerate(zip(got, want)):
        a = np.asarray(a)
        assert a.shape == b.shape, i
        scale = float(np.max(np.abs(b)))
        assert scale > 0, f"variable {i}: all zero"
        np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-6 * scale, err_msg=f"variable {i}")


@pytest.mark.parametrize("heads", ["shared", "multi"])
@pytest.mark.parametrize("estimator", ["empirical", "sampled", "seed"])
def test_dense_fisher_equals_per_example_loop(estimator: str, heads: str) -> None:
    spec = _spec(heads)
    keras.utils.set_random_seed(0)
    net = build_model(spec)
    layout = head_layout(spec)
    x, y = _data(net.output_shape[-1])
    dense = FisherDiagonal(net, estimator, layout)
    assert dense.path == "dense"
    got = dense.estimate(x, y, (3, 4))
    labels = dense.labels(tf.constant(x), tf.constant(y), tf.constant([3, 4])).numpy()
    if estimator == "sampled":
        assert not np.array_equal(labels, y)
    if layout is not None:  # every label in its example's head
        assert layout.mask[layout.task_of_unit[y], labels].all()
    _close(got, fisher_naive(net, x, labels, estimator, layout))
    vectorised = FisherDiagonal(net, estimator, layout, path="vectorised")
    _close(got, [v.numpy() for v in vectorised.estimate(x, y, (3, 4))])


def test_multi_head_reference_differs_from_shared() -> None:
    """The loop's heads argument matters (so the multi-head comparison above tests it)."""
    spec = _spec("multi")
    keras.utils.set_random_seed(0)
    net = build_model(spec)
    x, y = _data(net.output_shape[-1])
    own = fisher_naive(net, x, y, "empirical", head_layout(spec))
    shared = fisher_naive(net, x, y, "empirical")
    assert abs(own[-1].sum() / shared[-1].sum() - 1.0) > 0.05


def _chain_model() -> keras.Model:
    """Another chain: tanh, a bias-free layer, dropout, a frozen layer, an Activation."""
    keras.utils.set_random_seed(2)
    inp = keras.Input((4, 5, 1))
    h = keras.layers.Flatten()(inp)
    h = keras.layers.Dense(12, activation="tanh")(h)
    h = keras.layers.Dropout(0.5)(h)
    h = keras.layers.Dense(9, use_bias=False)(h)
    h = keras.layers.Activation("sigmoid")(h)
    frozen = keras.layers.Dense(8, activation="relu")
    h = frozen(h)
    out = keras.layers.Dense(6)(h)
    frozen.trainable = False
    return keras.Model(inp, out)


@pytest.mark.parametrize("estimator", ["empirical", "seed"])
def test_other_dense_chains(estimator: str) -> None:
    net = _chain_model()
    assert len(net.trainable_variables) == 5
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(N, 4, 5, 1)).astype(np.float32), rng.integers(0, 6, N).astype(np.int32)
    fisher = FisherDiagonal(net, estimator)
    assert fisher.path == "dense"
    _close(fisher.estimate(x, y, (0, 0)), fisher_naive(net, x, y, estimator))


def _residual() -> keras.Model:
    inp = keras.Input((6,))
    h = keras.layers.Dense(6)(inp)
    return keras.Model(inp, keras.layers.Dense(3)(keras.layers.Add()([inp, h])))


def _batch_norm() -> keras.Model:
    inp = keras.Input((6,))
    h = keras.layers.BatchNormalization()(keras.layers.Dense(6)(inp))
    return keras.Model(inp, keras.layers.Dense(3)(h))


def _shared_layer() -> keras.Model:
    inp = keras.Input((6,))
    layer = keras.layers.Dense(6)
    return keras.Model(inp, keras.layers.Dense(3)(layer(layer(inp))))


def _sequence() -> keras.Model:  # Dense on rank-3 inputs: a per-example sum over positions
    inp = keras.Input((4, 6))
    return keras.Model(inp, keras.layers.Flatten()(keras.layers.Dense(3)(inp)))


@pytest.mark.parametrize("build", [_residual, _batch_norm, _shared_layer, _sequence])
def test_models_outside_the_analytic_path_fall_back(build) -> None:
    net = build()
    assert DenseChain.of(net, list(net.trainable_variables)) is None
    assert FisherDiagonal(net, "empirical").path == "vectorised"
    with pytest.raises(ValueError, match="not a chain"):
        FisherDiagonal(net, "empirical", path="dense")


def test_lenet_takes_the_vectorised_path_and_mlp_the_dense_one() -> None:
    lenet = build_model(ExperimentSpec(model="lenet", dataset="mnist-5k"))
    assert FisherDiagonal(lenet, "empirical").path == "vectorised"
    mlp = build_model(ExperimentSpec(model="mlp", dataset="mnist-5k"))
    assert FisherDiagonal(mlp, "empirical").path == "dense"
    with pytest.raises(ValueError, match="unknown Fisher path"):
        FisherDiagonal(mlp, "empirical", path="fast")


def test_vectorised_chunks_still_add_up(monkeypatch: pytest.MonkeyPatch) -> None:
    keras.utils.set_random_seed(1)
    net = build_model(ExperimentSpec(model="mlp", dataset="digits"))
    x, y = _data(10, seed=1)
    whole = FisherDiagonal(net, "empirical", path="vectorised").estimate(x, y, (0, 0))
    monkeypatch.setattr(fm, "MAX_JACOBIAN_FLOATS", 8 * 10_000)  # chunks of 7 examples
    chunked = FisherDiagonal(net, "empirical", path="vectorised").estimate(x, y, (0, 0))
    dense = FisherDiagonal(net, "empirical").estimate(x, y, (0, 0))
    _close(chunked, [w.numpy() for w in whole], rtol=1e-5)
    _close(dense, [w.numpy() for w in whole])


def test_dense_path_traces_once_for_any_number_of_examples() -> None:
    keras.utils.set_random_seed(0)
    net = build_model(ExperimentSpec(model="mlp", dataset="digits"))
    fisher = FisherDiagonal(net, "sampled")
    for n in (5, 17, N):
        x, y = _data(10, seed=n)
        fisher.estimate(x[:n], y[:n], (n, 1))
    assert fisher.squared_gradient_sum.experimental_get_tracing_count() == 1
    assert fisher.labels.experimental_get_tracing_count() == 1


def test_mas_importance_of_dense_chains_equals_per_example_loop() -> None:
    """MAS takes the same analytic path, with |·| for the square: Σ_n |∂‖f(x_n)‖²/∂θ|."""
    from continual_core.methods.mas import MASImportance, mas_importance_naive

    for net, shape in [(_chain_model(), (4, 5, 1)), (build_model(_spec("multi")), (8, 8, 1))]:
        x = np.random.default_rng(4).normal(size=(N, *shape)).astype(np.float32)
        mas = MASImportance(net, _spec("shared"))
        assert mas.chain is not None
        _close(mas.importance(x), mas_importance_naive(net, x))
