"""`Learner`: the model, its optimizer, the active methods, and the compiled functions that
train and evaluate it.

The training step is one `tf.function` with a fixed input signature (the task's whole
training set as tensors, plus a batch of indices), so it is traced once per run: tasks of
any size, any epoch, any batch — same graph. It fires the in-graph hooks of every active
method (`continual_core.methods.base`), whose state variables exist from the start, so
finishing a task changes values, never the graph.

With `heads: multi` (`continual_core.heads`) a label is an output unit (`labels`), each
example's loss is over its own task's head, and `accuracy` evaluates segment j of its
data (task j+1) with task j+1's head. With one shared head nothing of that runs.

Steps per call, `EWC_STEPS_PER_CALL` (read when a learner is built, like `EWC_XLA`; "auto"
by default, or a number ≥ 1). An epoch's full batches run k at a time in ONE compiled call
(`train_steps`: a graph loop over the rows of a k × batch index matrix, as Keras'
`steps_per_execution`), which saves the per-call overhead of one call per batch: the mlp's
epoch in ≈ 0.5–0.7× the time (bench/flop_limit.py). The loop calls the traced step itself,
so it is traced once for any k, task or epoch, and gives the per-batch step's bits exactly.
`should_stop()` is polled between calls, so "auto" keeps a call short: k = 1 for a model
with convolutions (the loop gains nothing for lenet on CPU, and a stop stays prompt there),
else as many steps as take ≈ `CALL_FLOPS` (the mlp's whole epoch of mnist-5k).

XLA, off unless the environment sets `EWC_XLA=1` (read when a learner is built; no spec
field: it changes speed and the last bits, not the experiment; `ewc run` and a worker read
it alike, so one spec and one setting give one result in both). With it, the update of a
model without convolutions is compiled with XLA (`jit_compile=True`; bench/flop_limit.py:
≈ 0.8× the plain epoch of the mlp per batch, ≈ 0.45× with the whole loop), a conv model's is not (lenet's epoch: ≈ 2.4× slower
under XLA on CPU). Why not by default: XLA compiles per batch shape (a full and a short last
batch), ≈ 2.5 s more wall for the README's cold `ewc run` (≈ 8 s), against ≈ 0.3 s it saves
over its 45 epochs; and A-GEM, whose update falls back (below), would no longer train task 1
exactly as fine-tuning does. The batch is built (gathered, methods' `batch`, augmented) in a
plain tf.function and only the update is XLA-compiled: the augmenter's image transform has
no XLA kernel, and replay's memory batch has a size read from a variable. An update XLA
cannot lower (A-GEM: its reference batch's size is a variable) is found before the first
step, nothing having run, and that learner takes the plain step; `xla` says which is used.
With k > 1 the whole loop is XLA-compiled where it lowers (no augmenter, no batch hook of
a size read from a variable, as replay's): `xla_loop`; else the plain loop calls the XLA
update (found, again, before the loop's first call). XLA compiles per grid shape.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras.src.backend.common import global_state
from keras.src.random.seed_generator import GLOBAL_SEED_GENERATOR
from keras.src.utils.rng_utils import GLOBAL_RANDOM_SEED

from continual_core.events import StopRequested
from continual_core.fisher import FisherDiagonal
from continual_core.heads import HeadMask, head_layout
from continual_core.importance import estimator_class
from continual_core.methods import METHODS, FinishedTask, Method, Step
from continual_core.models import build_augmenter, build_model, eval_chunk
from continual_core.seeds import seed_for
from continual_core.spec import ExperimentSpec
from continual_core.steps import call_steps_for, has_conv, lowers, steps_per_call_setting, use_xla

__all__ = ["Learner", "seed_for", "set_random_seed"]


def set_random_seed(seed: int) -> None:
    """`keras.utils.set_random_seed` but for TensorFlow's global seed: Python's, NumPy's and
    Keras' (its global seed generator, and the seeds of initialisers made without one).

    Every random draw of a run comes from those, from seed generators the learner resets,
    from seeded `tf.random.Generator`s or stateless ops with explicit seeds; no op reads
    TensorFlow's global seed. Setting it would clear the runtime's kernel cache, so every
    compiled function would be instantiated (optimised) again on its next call: about a
    second at every task start, and at every job a worker runs on a kept learner.
    """
    global_state.set_global_attribute(GLOBAL_RANDOM_SEED, seed)
    global_state.set_global_attribute(GLOBAL_SEED_GENERATOR, None)
    random.seed(seed)
    np.random.seed(seed)


class Learner:
    """Everything that is trained and checkpointed for one run."""

    def __init__(self, spec: ExperimentSpec, xla: bool | None = None, steps_per_call: int | None = None):
        self.spec = spec
        layout = head_layout(spec)
        #: The heads' in-graph masks with `heads: multi`, None with one shared head.
        self.heads = HeadMask(layout) if layout is not None else None
        set_random_seed(spec.seed)
        self.model = build_model(spec)
        #: Whether the update is XLA-compiled (None: `EWC_XLA` and the model decide).
        self.xla = use_xla(self.model) if xla is None else xla
        self.augmenter = build_augmenter(spec)
        self.weights = list(self.model.trainable_variables)
        self.optimizer = keras.optimizers.Adam(learning_rate=spec.learning_rate)
        self.optimizer.build(self.weights)
        #: The active methods by spec key, in registry order (the order their hooks fire).
        self.methods: dict[str, Method] = {
            name: METHODS[name](config, self) for name, config in spec.methods.items()
        }
        #: The importance estimators the methods name, built once (traced once) per run.
        self.estimators: dict[Any, Any] = {}
        for key in dict.fromkeys(k for m in self.methods.values() for k in m.estimators):
            self._estimator(key)
        self.trace_count = 0  # how often the training step was traced (tests check it is 1)
        #: Steps per compiled call: `EWC_STEPS_PER_CALL` (None) or this number; 0 = "auto".
        self.steps_per_call = steps_per_call_setting() if steps_per_call is None else steps_per_call
        self._conv = has_conv(self.model)
        #: Whether the loop of steps is XLA-compiled as a whole (known after its first call).
        self.xla_loop = False
        x_spec = tf.TensorSpec((None, *spec.input_shape), tf.float32)
        self._x_spec = x_spec
        self._compile_step()
        self._xla_unproven = self.xla  # until its first call compiled
        self._loop_unproven = self.xla  # the XLA loop: until its first call compiled
        self._predict = tf.function(self._predict_labels, input_signature=[x_spec])
        self._predict_heads = tf.function(
            self._predict_with_heads, input_signature=[x_spec, tf.TensorSpec((None,), tf.int32)]
        )

    # Compiled functions ------------------------------------------------------------------

    def _compile_step(self) -> None:
        """`_train_step`: the batch is built (gathered, methods' `batch`, augmented) in a
        plain tf.function, and the update on it in one compiled with XLA if `xla`: so the
        ops XLA has no kernel for (the augmenter's image transform) or whose sizes it cannot
        know (replay's memory batch) stay out of it, and it compiles per batch shape only."""
        ints = tf.TensorSpec((None,), tf.int32)
        self._update = tf.function(self._update_on, input_signature=[self._x_spec, ints], jit_compile=self.xla)
        self._train_step = tf.function(self._step, input_signature=[self._x_spec, ints, ints])
        self._train_steps = self._loop(xla=False)

    def _loop(self, xla: bool) -> Any:
        """`_steps` compiled: an index matrix of any shape (k, batch), so it is traced once."""
        sig = [self._x_spec, tf.TensorSpec((None,), tf.int32), tf.TensorSpec((None, None), tf.int32)]
        return tf.function(self._steps, input_signature=sig, jit_compile=True if xla else None)

    def _steps(self, x_all: tf.Tensor, y_all: tf.Tensor, grid: tf.Tensor) -> tf.Tensor:
        """One step per row of `grid` (the indices of k batches), in a graph loop; the k
        losses. Each is `_train_step` called in the graph: the same traced function as a
        single step's, so it is traced once for both, and gives the same bits."""
        n = tf.shape(grid)[0]
        losses = tf.TensorArray(tf.float32, size=n)
        for i in tf.range(n):
            tf.autograph.experimental.set_loop_options(parallel_iterations=1)
            losses = losses.write(i, self._train_step(x_all, y_all, grid[i]))
        return losses.stack()

    def _step(self, x_all: tf.Tensor, y_all: tf.Tensor, idx: tf.Tensor) -> tf.Tensor:
        """One optimizer step on the examples `idx` of (x_all, y_all); returns the batch loss."""
        self.trace_count += 1
        x, y = tf.gather(x_all, idx), tf.gather(y_all, idx)
        for method in self.methods.values():
            x, y = method.batch(x, y)
        if self.augmenter is not None:
            x = self.augmenter(x, training=True)
        return self._update(x, y)

    def _update_on(self, x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        """The optimizer step on the batch (x, y), every method's hooks in it; the loss."""
        methods = list(self.methods.values())
        step = Step(x=x, y=y)
        with tf.GradientTape() as tape:
            step.logits = logits = self.model(x, training=True)
            if self.heads is not None:  # each example on its own task's head
                logits = self.heads.apply(logits, self.heads.for_labels(y))
            step.loss = loss = tf.reduce_mean(
                keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
            )
            for method in methods:
                penalty = method.penalty(step)
                if penalty is not None:
                    loss += penalty
        grads = tape.gradient(loss, self.weights)
        for method in methods:
            grads = method.gradients(grads, step)
        self.optimizer.apply(grads, self.weights)
        step.grads = list(grads)
        for method in methods:
            method.after_step(step)
        return loss

    def _predict_labels(self, x: tf.Tensor) -> tf.Tensor:
        return tf.argmax(self.model(x, training=False), axis=-1, output_type=tf.int32)

    def _predict_with_heads(self, x: tf.Tensor, tasks: tf.Tensor) -> tf.Tensor:
        """The output unit predicted for each example by the head of its 0-based task."""
        assert self.heads is not None
        logits = self.heads.apply(self.model(x, training=False), self.heads.for_tasks(tasks))
        return tf.argmax(logits, axis=-1, output_type=tf.int32)

    # Python-side driving -----------------------------------------------------------------

    def start_task(self, task: int) -> None:
        """Reset every random stream to its (seed, task) value; re-create Adam's state if
        `spec.reset_optimizer` (zeroing its moments and step count = a fresh Adam, same graph)."""
        set_random_seed(seed_for(self.spec, task, 0))
        for i, gen in enumerate(self.seed_generators()):
            gen.assign(np.array([seed_for(self.spec, task, 100 + i), 0], np.int64))
        if self.spec.reset_optimizer and task > 1:
            for v in self.optimizer.variables:
                if "learning_rate" not in v.path:
                    v.assign(tf.zeros(v.shape, v.dtype))
        for method in self.methods.values():
            method.start_task(task)

    def seed_generators(self) -> list[tf.Variable]:
        """The state variables of every Keras SeedGenerator (dropout, augmentation)."""
        layers = [self.model] + ([self.augmenter] if self.augmenter is not None else [])
        return [v for m in layers for v in m.non_trainable_variables if "seed_generator" in v.path]

    def train_step(self, x: tf.Tensor, y: tf.Tensor, idx: tf.Tensor) -> tf.Tensor:
        """One optimizer step on the examples `idx` of (x, y); its loss. Before the first, with
        XLA: the update is lowered to XLA (nothing runs) and, if it cannot be, the step is the
        plain one."""
        self._prove_update()
        return self._train_step(x, y, idx)

    def _prove_update(self) -> None:
        if self._xla_unproven:
            self._xla_unproven = False
            if not lowers(self._update, tf.zeros((1, *self.spec.input_shape)), tf.zeros((1,), tf.int32)):
                self.xla = self._loop_unproven = False
                self._compile_step()

    def train_steps(self, x: tf.Tensor, y: tf.Tensor, grid: tf.Tensor) -> tf.Tensor:
        """One step per row of `grid` (k × batch indices of (x, y)) in one compiled call; the
        k losses. With XLA, before the first: the whole loop is lowered to XLA if it can be
        (no augmenter, no batch of a size read from a variable such as replay's), else the
        loop is plain and calls the XLA update (or the plain one: `train_step`)."""
        self._prove_update()
        if self._loop_unproven:
            self._loop_unproven = False
            if self.augmenter is None:
                loop = self._loop(xla=True)
                probe = tf.zeros((1, *self.spec.input_shape)), tf.zeros((1,), tf.int32)
                if lowers(loop, *probe, tf.zeros((1, 1), tf.int32)):
                    self._train_steps, self.xla_loop = loop, True
        return self._train_steps(x, y, grid)

    def call_steps(self, batch: int) -> int:
        """Steps per compiled call for batches of `batch` (`continual_core.steps.call_steps_for`)."""
        weights = sum(int(np.prod(w.shape)) for w in self.weights)
        return call_steps_for(self.steps_per_call, self._conv, weights, batch)

    def train_epoch(
        self, x: tf.Tensor, y: tf.Tensor, order: np.ndarray, should_stop: Callable[[], bool]
    ) -> float:
        """One pass over (x, y) in the batches of `order` (a permutation of the examples).

        With k = `call_steps` > 1 the full batches go k at a time through `train_steps`, one
        compiled call each, then a short last batch alone (a 1-row grid); with k = 1 every
        batch is a `train_step`. The same losses and weights, bit for bit, whatever k (without
        XLA: the loop calls the same traced step).
        Polls `should_stop()` before every call and raises `StopRequested` when it is True.
        Returns the mean loss per example (float; NaN/inf if training diverged).
        """
        bs = self.spec.batch_size
        order = np.asarray(order)
        k = self.call_steps(bs)
        if k == 1:
            calls = [order[s : s + bs][None] for s in range(0, len(order), bs)]
        else:  # k full batches a call, then a short last batch alone (a 1 × short grid)
            full = len(order) // bs
            grid = order[: full * bs].reshape(full, bs)
            calls = [grid[s : s + k] for s in range(0, full, k)]
            calls += [order[full * bs :][None]] if len(order) > full * bs else []
        losses, sizes = [], []
        for rows in calls:
            if should_stop():
                raise StopRequested("stop requested by the caller")
            idx = tf.constant(rows, tf.int32)
            losses.append(self.train_steps(x, y, idx) if k > 1 else self.train_step(x, y, idx[0]))
            sizes += [rows.shape[1]] * rows.shape[0]
        values = np.concatenate([np.reshape(v.numpy(), -1) for v in losses]) if losses else np.zeros(0)
        return float(np.dot(values.astype(np.float64), sizes) / max(1, sum(sizes)))

    def labels(self, y: np.ndarray, task: int) -> np.ndarray:
        """The labels the learner trains on for class labels `y` of task `task` (1-based):
        `y` itself, or with `heads: multi` the output units of task's head."""
        return y if self.heads is None else self.heads.layout.encode(y, task)

    def accuracy(self, x: tf.Tensor, y: np.ndarray, bounds: list[int]) -> list[float]:
        """Accuracy on each segment [bounds[j], bounds[j+1]) of (x, y) (fractions in [0, 1]).
        With `heads: multi` segment j holds task j+1 (class labels) and is read by its head."""
        chunk = eval_chunk(self.spec.model)
        if self.heads is not None:
            sizes = np.diff(bounds)
            tasks = np.repeat(np.arange(len(sizes), dtype=np.int32), sizes)
            y = np.concatenate([self.labels(y[a:b], j + 1) for j, (a, b) in enumerate(itertools.pairwise(bounds))])
            preds = [self._predict_heads(x[s : s + chunk], tf.constant(tasks[s : s + chunk])).numpy()
                     for s in range(0, len(y), chunk)]  # fmt: skip
        else:
            preds = [self._predict(x[s : s + chunk]).numpy() for s in range(0, len(y), chunk)]
        correct = (np.concatenate(preds) == y) if preds else np.zeros(0, bool)
        return [
            float(correct[a:b].mean()) if b > a else 0.0 for a, b in itertools.pairwise(bounds)
        ]

    @property
    def consolidates(self) -> bool:
        """Whether some active method does anything at the end of a task."""
        return any(type(m).consolidates() for m in self.methods.values())

    @property
    def fisher(self) -> FisherDiagonal | None:
        """The compiled Fisher of the spec's estimator, if a method uses it."""
        estimator = self.estimators.get("fisher")
        return estimator.diagonal if estimator is not None else None

    def importance(self, key: Any, x: np.ndarray, y: np.ndarray, task: int, samples: int) -> list[tf.Tensor]:
        """Importance estimate `key` (a name of `continual_core.importance.ESTIMATORS`, or an
        estimator class) at the current weights from `samples` training examples of `task`."""
        return self._estimator(key).estimate(x, y, task, samples)

    def _estimator(self, key: Any) -> Any:
        if key not in self.estimators:
            self.estimators[key] = estimator_class(key)(self.model, self.spec)
        return self.estimators[key]

    def estimate_fisher(self, x: np.ndarray, y: np.ndarray, task: int, samples: int) -> list[tf.Tensor]:
        """Diagonal Fisher at the current weights from `samples` training examples of a task
        (drawn with a generator seeded by (seed, task))."""
        return self.importance("fisher", x, y, task, samples)

    def consolidate(self, x: np.ndarray, y: np.ndarray, task: int) -> dict[str, float]:
        """After a task: every active method's `end_task`, in registry order. Each importance
        estimate is computed once, however many methods read it. Returns the numbers the
        methods report (FIM: `frozen_fraction`)."""
        cache: dict[tuple[Any, int], list[tf.Tensor]] = {}

        def importance(key: Any, samples: int) -> list[tf.Tensor]:
            if (key, samples) not in cache:
                cache[key, samples] = self.importance(key, x, y, task, samples)
            return cache[key, samples]

        finished = FinishedTask(index=task, x=x, y=y, importance=importance)
        report: dict[str, float] = {}
        for method in self.methods.values():
            report.update(method.end_task(finished))
        return report

    def state(self) -> dict[str, list]:
        """Every variable of the training state, by group (for checkpoints)."""
        groups: dict[str, list] = {
            "model": list(self.model.variables),
            "optimizer": list(self.optimizer.variables),
        }
        if self.augmenter is not None:
            groups["augmenter"] = list(self.augmenter.variables)
        for name, method in self.methods.items():
            if variables := method.state():
                groups[name] = list(variables)
        return groups
