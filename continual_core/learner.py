"""`Learner`: the model, its optimizer, the methods' state, and the compiled functions that
train and evaluate it.

The training step is one `tf.function` with a fixed input signature (the task's whole
training set as tensors, plus a batch of indices), so it is traced once per run: tasks of
any size, any epoch, any batch — same graph. The EWC/FIM state are variables that exist
from the start (zeros / False), so finishing a task changes values, never the graph.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from continual_core.events import StopRequested
from continual_core.fisher import FisherDiagonal, fisher_sample
from continual_core.methods import ElasticWeightConsolidation, FisherMasking, incdet_clip
from continual_core.models import build_augmenter, build_model
from continual_core.spec import ExperimentSpec

#: Examples per compiled prediction call (smaller for the CNNs to bound memory).
EVAL_CHUNK = {"mlp": 8192, "lenet": 2048, "cifarnet": 512}


def seed_for(spec: ExperimentSpec, task: int, stream: int) -> int:
    """A 31-bit seed derived from (spec.seed, task, stream): every random stream of a task
    restarts from it, so a run resumed at a task boundary replays exactly."""
    return int(np.random.SeedSequence([spec.seed, task, stream]).generate_state(1)[0] >> 1)


class Learner:
    """Everything that is trained and checkpointed for one run."""

    def __init__(self, spec: ExperimentSpec):
        self.spec = spec
        keras.utils.set_random_seed(spec.seed)
        self.model = build_model(spec)
        self.augmenter = build_augmenter(spec)
        self.weights = list(self.model.trainable_variables)
        self.optimizer = keras.optimizers.Adam(learning_rate=spec.learning_rate)
        self.optimizer.build(self.weights)
        self.ewc = ElasticWeightConsolidation(self.weights, spec.ewc_lambda) if spec.ewc else None
        fim_threshold = spec.fim.threshold if spec.fim else None
        self.fim = FisherMasking(self.weights, float(fim_threshold)) if fim_threshold else None
        self.fisher = FisherDiagonal(self.model, spec.fisher) if (spec.ewc or spec.fim) else None
        self.trace_count = 0  # how often the training step was traced (tests check it is 1)
        x_spec = tf.TensorSpec((None, *spec.input_shape), tf.float32)
        self._train_step = tf.function(
            self._step,
            input_signature=[x_spec, tf.TensorSpec((None,), tf.int32), tf.TensorSpec((None,), tf.int32)],
        )
        self._predict = tf.function(self._predict_labels, input_signature=[x_spec])

    # Compiled functions ------------------------------------------------------------------

    def _step(self, x_all: tf.Tensor, y_all: tf.Tensor, idx: tf.Tensor) -> tf.Tensor:
        """One optimizer step on the examples `idx` of (x_all, y_all); returns the batch loss."""
        self.trace_count += 1
        x, y = tf.gather(x_all, idx), tf.gather(y_all, idx)
        if self.augmenter is not None:
            x = self.augmenter(x, training=True)
        with tf.GradientTape() as tape:
            logits = self.model(x, training=True)
            loss = tf.reduce_mean(
                keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
            )
            if self.ewc is not None:
                loss += self.ewc.penalty(self.weights)
        grads = tape.gradient(loss, self.weights)
        if self.fim is not None:
            grads = self.fim.mask_gradients(grads)
        if self.spec.incdet is not None:
            grads = incdet_clip(grads, self.spec.incdet.threshold)
        self.optimizer.apply(grads, self.weights)
        if self.fim is not None:
            self.fim.restore_frozen(self.weights)
        return loss

    def _predict_labels(self, x: tf.Tensor) -> tf.Tensor:
        return tf.argmax(self.model(x, training=False), axis=-1, output_type=tf.int32)

    # Python-side driving -----------------------------------------------------------------

    def start_task(self, task: int) -> None:
        """Reset every random stream to its (seed, task) value; re-create Adam's state if
        `spec.reset_optimizer` (zeroing its moments and step count = a fresh Adam, same graph)."""
        keras.utils.set_random_seed(seed_for(self.spec, task, 0))
        for i, gen in enumerate(self.seed_generators()):
            gen.assign(np.array([seed_for(self.spec, task, 100 + i), 0], np.int64))
        if self.spec.reset_optimizer and task > 1:
            for v in self.optimizer.variables:
                if "learning_rate" not in v.path:
                    v.assign(tf.zeros(v.shape, v.dtype))

    def seed_generators(self) -> list[tf.Variable]:
        """The state variables of every Keras SeedGenerator (dropout, augmentation)."""
        layers = [self.model] + ([self.augmenter] if self.augmenter is not None else [])
        return [v for m in layers for v in m.non_trainable_variables if "seed_generator" in v.path]

    def train_epoch(
        self, x: tf.Tensor, y: tf.Tensor, order: np.ndarray, should_stop: Callable[[], bool]
    ) -> float:
        """One pass over (x, y) in the batches of `order` (a permutation of the examples).

        Polls `should_stop()` before every batch and raises `StopRequested` when it is True.
        Returns the mean loss per example (float; NaN/inf if training diverged).
        """
        bs = self.spec.batch_size
        losses, sizes = [], []
        for start in range(0, len(order), bs):
            if should_stop():
                raise StopRequested("stop requested by the caller")
            idx = order[start : start + bs]
            losses.append(self._train_step(x, y, tf.constant(idx, tf.int32)))
            sizes.append(len(idx))
        return float(np.dot(np.array([float(v) for v in losses]), sizes) / max(1, sum(sizes)))

    def accuracy(self, x: tf.Tensor, y: np.ndarray, bounds: list[int]) -> list[float]:
        """Accuracy on each segment [bounds[j], bounds[j+1]) of (x, y) (fractions in [0, 1])."""
        chunk = EVAL_CHUNK[self.spec.model]
        preds = [self._predict(x[s : s + chunk]).numpy() for s in range(0, len(y), chunk)]
        correct = (np.concatenate(preds) == y) if preds else np.zeros(0, bool)
        return [
            float(correct[a:b].mean()) if b > a else 0.0 for a, b in itertools.pairwise(bounds)
        ]

    def estimate_fisher(self, x: np.ndarray, y: np.ndarray, task: int, samples: int) -> list[tf.Tensor]:
        """Diagonal Fisher at the current weights from `samples` training examples of a task
        (drawn with a generator seeded by (seed, task))."""
        assert self.fisher is not None
        rng = np.random.default_rng(seed_for(self.spec, task, 1))
        idx = fisher_sample(rng, len(x), samples)
        return self.fisher.estimate(x[idx], y[idx], (seed_for(self.spec, task, 2), task))

    def consolidate(self, x: np.ndarray, y: np.ndarray, task: int) -> float | None:
        """After a task: estimate the Fisher(s), add the EWC quadratic, freeze FIM weights.
        Returns the fraction of weights frozen (FIM) or None."""
        fishers: dict[int, list[tf.Tensor]] = {}
        for cfg in (self.spec.ewc, self.spec.fim):
            if cfg is not None and cfg.samples not in fishers:
                fishers[cfg.samples] = self.estimate_fisher(x, y, task, cfg.samples)
        if self.ewc is not None and self.spec.ewc is not None:
            self.ewc.consolidate(fishers[self.spec.ewc.samples], self.weights)
        if self.fim is not None and self.spec.fim is not None:
            return self.fim.freeze(fishers[self.spec.fim.samples], self.weights)
        return None

    def state(self) -> dict[str, list]:
        """Every variable of the training state, by group (for checkpoints)."""
        groups: dict[str, list] = {
            "model": list(self.model.variables),
            "optimizer": list(self.optimizer.variables),
        }
        if self.augmenter is not None:
            groups["augmenter"] = list(self.augmenter.variables)
        if self.ewc is not None:
            groups["ewc"] = self.ewc.state
        if self.fim is not None:
            groups["fim"] = self.fim.state
        return groups
