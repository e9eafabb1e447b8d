"""The diagonal Fisher information of a model's trainable weights, from per-example
squared gradients summed in one compiled function: for a chain of Dense layers from one
ordinary backward pass (`continual_core.fisher_dense`), for any other model from per-example
gradients computed in one vectorised pass (`tf.vectorized_map`, i.e. pfor). The first
traces in a fraction of the time of the second (a cold run's first Fisher; bench/cold_fisher.py).

F_i = (1/N) Σ_n (∂ℓ_n/∂θ_i)², where ℓ_n is, per estimator:

- `empirical`: −log p(y_n | x_n), the true label's negative log-likelihood;
- `sampled`:  −log p(ŷ_n | x_n), ŷ_n drawn from the model's own predictive distribution
  (the "true" Fisher, one Monte-Carlo label per example, seeded);
- `seed`:     −Σ_c log p(c | x_n), the original project's estimator (labels unused).
  It is larger than the others by orders of magnitude, hence its own λ/threshold scale.

The model runs in inference mode (batch-norm uses its moving statistics, dropout is off,
no augmentation). With `heads: multi` the labels are output units and p is the softmax over
each example's own head (`continual_core.heads`); `seed` sums over that head's classes.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Sequence

import keras
import numpy as np
import tensorflow as tf

from continual_core.fisher_dense import DenseChain
from continual_core.heads import HeadLayout, HeadMask

#: Upper bound of per-example gradient floats held at once (≈ 256 MiB of float32).
MAX_JACOBIAN_FLOATS = 64 * 1024 * 1024


def per_example_loss(
    logits: tf.Tensor,
    labels: tf.Tensor,
    estimator: str,
    mask: tf.Tensor | None = None,
    one_hot: bool = False,
) -> tf.Tensor:
    """ℓ_n for every example (shape (N,)) under `estimator` (see the module docstring);
    `mask` (N, outputs) bool restricts each example to its head (`heads: multi`).
    `one_hot`: pick each label's log-probability by a one-hot product instead of a batched
    gather (the same value; its gradient traces several times faster)."""
    if mask is not None:
        logits = HeadMask.apply(logits, mask)
    log_p = tf.nn.log_softmax(logits, axis=-1)
    if estimator == "seed":
        if mask is not None:
            log_p = tf.where(mask, log_p, tf.zeros_like(log_p))
        return -tf.reduce_sum(log_p, axis=-1)
    if one_hot:
        return -tf.reduce_sum(tf.one_hot(labels, tf.shape(log_p)[-1]) * log_p, axis=-1)
    return -tf.gather(log_p, labels, axis=1, batch_dims=1)


class FisherDiagonal:
    """Compiled Fisher estimator for one model; call `estimate(x, y, seed)`.

    Two compiled functions, traced once each (any number of examples, any seed):
    `labels(x, y, seed)` picks the label each example's loss uses (the true one, or one drawn
    from the model for `sampled`), and `squared_gradient_sum(x, labels)` returns
    Σ_n (∂ℓ_n/∂θ)² per trainable variable.

    `path`: "dense" (analytic, one backward pass), "vectorised" (any model), or "auto" (dense
    where `DenseChain.of` accepts the model); `self.path` is the one used.

    `warm_up(sizes)` traces and runs both on all-zero examples in a background thread, so
    that a cold process's first real `estimate` finds them traced and instantiated (that
    first-time cost, ~0.1 s on the mlp, is ~40× a warm estimate); `estimate` joins it first.
    It changes no variable and no random stream (its result is dropped).
    """

    def __init__(
        self, model: keras.Model, estimator: str, heads: HeadLayout | None = None, path: str = "auto"
    ):
        if estimator not in ("empirical", "sampled", "seed"):
            raise ValueError(f"unknown Fisher estimator {estimator!r}")
        if path not in ("auto", "dense", "vectorised"):
            raise ValueError(f"unknown Fisher path {path!r}")
        self.model, self.estimator = model, estimator
        self.heads = HeadMask(heads) if heads is not None else None
        self.variables = list(model.trainable_variables)
        self.num_params = int(sum(np.prod(v.shape) for v in self.variables))
        x_spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)
        y_spec = tf.TensorSpec((None,), tf.int32)
        seed_spec = tf.TensorSpec((2,), tf.int32)
        self.chain = DenseChain.of(model, self.variables) if path != "vectorised" else None
        if path == "dense" and self.chain is None:
            raise ValueError(f"model {model.name!r} is not a chain of Dense layers")
        self.path = "dense" if self.chain is not None else "vectorised"
        # No Python control flow depends on a tensor in either: without AutoGraph, a cold
        # process traces them in a fraction of the time (bench/cold_fisher.py).
        self.labels = tf.function(
            self._labels, input_signature=[x_spec, y_spec, seed_spec], autograph=False
        )
        sums = self._dense_squared_gradient_sum if self.chain else self._squared_gradient_sum
        self.squared_gradient_sum = tf.function(
            sums, input_signature=[x_spec, y_spec], autograph=self.chain is None
        )
        self._warm_up: threading.Thread | None = None
        self.warmed_up = False  # once per estimator: a worker's kept learner never again

    def warm_up(self, sizes: Iterable[int] = (1,)) -> None:
        """Start tracing and instantiating the compiled functions in a background thread
        (once; a no-op after that): `estimate` on all-zero examples, once per size in `sizes`
        (the sample sizes the real estimates will use: some kernels are prepared per shape),
        the results dropped."""
        if self.warmed_up:
            return
        self.warmed_up = True
        shape = self.model.input_shape[1:]
        self._warm_up = threading.Thread(
            target=self._dummy_estimates, args=(shape, sorted(set(sizes))), name="fisher-warm-up"
        )
        self._warm_up.start()

    def _dummy_estimates(self, shape: tuple[int, ...], sizes: list[int]) -> None:
        with contextlib.suppress(Exception):  # a failure here is the real call's too, reported by it
            for n in sizes:
                self._estimate(np.zeros((n, *shape), np.float32), np.zeros(n, np.int32), (0, 0))

    def join_warm_up(self) -> None:
        """Wait for a running `warm_up` (if any) to finish."""
        if self._warm_up is not None:
            self._warm_up.join()
            self._warm_up = None

    def _labels(self, x: tf.Tensor, y: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        if self.estimator != "sampled":
            return y
        logits = self.model(x, training=False)
        if self.heads is not None:  # drawn from the example's own head
            logits = HeadMask.apply(logits, self.heads.for_labels(y))
        drawn = tf.random.stateless_categorical(logits, 1, seed=seed, dtype=tf.int32)
        return drawn[:, 0]

    def _dense_squared_gradient_sum(self, x: tf.Tensor, labels: tf.Tensor) -> list[tf.Tensor]:
        mask = self.heads.for_labels(labels) if self.heads is not None else None
        assert self.chain is not None

        def loss(logits: tf.Tensor) -> tf.Tensor:
            return per_example_loss(logits, labels, self.estimator, mask, one_hot=True)

        return self.chain.gradient_sums(x, loss, tf.square, self.variables)

    def _squared_gradient_sum(self, x: tf.Tensor, labels: tf.Tensor) -> list[tf.Tensor]:
        def squared_gradient(example: tuple[tf.Tensor, tf.Tensor]) -> list[tf.Tensor]:
            xi, yi = example
            with tf.GradientTape() as tape:
                logits = self.model(xi[None], training=False)
                mask = self.heads.for_labels(yi[None]) if self.heads is not None else None
                loss = per_example_loss(logits, yi[None], self.estimator, mask)[0]
            return [tf.square(g) for g in tape.gradient(loss, self.variables)]

        # vectorized_map turns the per-example gradient into one batched computation (pfor);
        # measured ~4x faster than tape.jacobian on the MLP.
        per_example = tf.vectorized_map(squared_gradient, (x, labels))
        return [tf.reduce_sum(g, axis=0) for g in per_example]

    def estimate(self, x: np.ndarray | tf.Tensor, y: np.ndarray | tf.Tensor, seed: Sequence[int]) -> list[tf.Tensor]:
        """The diagonal Fisher (one tensor per trainable variable, float32) from the examples
        `x` (N, H, W, C) with labels `y` (N,); `seed` = two ints for `sampled` labels."""
        self.join_warm_up()
        return self._estimate(x, y, seed)

    def _estimate(self, x: np.ndarray | tf.Tensor, y: np.ndarray | tf.Tensor, seed: Sequence[int]) -> list[tf.Tensor]:
        x = tf.convert_to_tensor(x, tf.float32)
        y = tf.convert_to_tensor(y, tf.int32)
        n = int(x.shape[0])
        if n == 0:
            raise ValueError("a Fisher estimate needs at least one example")
        labels = self.labels(x, y, tf.constant(seed, tf.int32))
        chunk = n  # the dense path holds no per-example gradient
        if self.chain is None:
            chunk = max(1, min(n, MAX_JACOBIAN_FLOATS // max(1, self.num_params)))
        if chunk == n:  # one call (a slice would be one more first-time op in a cold process)
            total = list(self.squared_gradient_sum(x, labels))
        else:
            total = [tf.zeros(v.shape, tf.float32) for v in self.variables]
            for start in range(0, n, chunk):
                part = self.squared_gradient_sum(x[start : start + chunk], labels[start : start + chunk])
                total = [a + b for a, b in zip(total, part)]
        return [t / float(n) for t in total]


def fisher_naive(
    model: keras.Model, x: np.ndarray, labels: np.ndarray, estimator: str, heads: HeadLayout | None = None
) -> list[np.ndarray]:
    """Reference implementation: one eager GradientTape per example (slow; tests/benchmarks).

    `labels` are the labels each loss uses (for `sampled`, take them from
    `FisherDiagonal.labels` so both implementations see the same draw); with `heads` they
    are output units and each loss is over the example's own head.
    """
    variables = list(model.trainable_variables)
    total = [np.zeros(v.shape, np.float32) for v in variables]
    mask = HeadMask(heads) if heads is not None else None
    for n in range(len(x)):
        y = tf.constant(labels[n : n + 1], tf.int32)
        with tf.GradientTape() as tape:
            logits = model(x[n : n + 1], training=False)
            loss = per_example_loss(logits, y, estimator, mask.for_labels(y) if mask else None)[0]
        for t, g in zip(total, tape.gradient(loss, variables)):
            t += np.square(g.numpy())
    return [t / len(x) for t in total]


def fisher_sample(rng: np.random.Generator, size: int, samples: int) -> np.ndarray:
    """Indices of the examples a Fisher estimate uses: `samples` draws from range(size),
    without replacement when possible (with replacement if samples > size)."""
    return rng.choice(size, size=samples, replace=samples > size)



