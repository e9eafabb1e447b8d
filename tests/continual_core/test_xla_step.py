"""The XLA-compiled update (`EWC_XLA=1`, a model without convolutions): every method
combination runs, under XLA where it compiles, and a run gives the same bits as a rerun of
its spec; A-GEM (a reference batch of a size read from a variable, inside the update) falls
back to the plain step and gives exactly the result without `EWC_XLA`; conv models and an
unset `EWC_XLA` take the plain step. With several steps per call (the default for these
mlps) the whole loop is XLA-compiled where it lowers (EWC; multi heads with LwF, MAS and
IncDet), else (replay's batch of a variable size, the augmenter) the plain loop calls the
XLA update, which gives the bits of the per-batch XLA step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf

from continual_core.compiled import LearnerCache, graph_key
from continual_core.learner import Learner
from continual_core.spec import ExperimentSpec
from continual_core.trainer import train
from tests.continual_core.test_compile_once import BASE, JOBS, outcome

#: One spec of each graph of test_compile_once (EWC; SI + replay; FIM + A-GEM; multi heads
#: with EWC, LwF, MAS and IncDet), and augmentation.
SPECS: list[dict[str, Any]] = [JOBS[0][1], JOBS[1][1], JOBS[4][1], JOBS[5][1]] + [
    {**BASE, "dataset_update": "permute", "augment": True, "ewc": {}, "seed": 3},
]


def _run(spec: ExperimentSpec, data: Path) -> tuple[dict, Learner]:
    cache = LearnerCache()
    result = outcome(train(spec, dataset_cache=data, learners=cache))
    return result, cache._learners[graph_key(spec)]  # type: ignore[index]


@pytest.mark.parametrize(
    ("body", "whole_loop"), zip(SPECS, [True, False, False, True, False]),
    ids=["ewc", "si+replay", "fim+agem", "multi", "augment"],
)  # fmt: skip
def test_xla_step_is_used_and_a_rerun_gives_the_same_bits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: dict, whole_loop: bool
) -> None:
    monkeypatch.setenv("EWC_XLA", "1")
    monkeypatch.delenv("EWC_STEPS_PER_CALL", raising=False)
    spec = ExperimentSpec(**body)
    (first, learner), (again, _) = _run(spec, tmp_path), _run(spec, tmp_path)
    assert first == again
    assert learner.trace_count == 1 and learner._train_steps.experimental_get_tracing_count() == 1
    falls_back = "agem" in body
    assert learner.xla is not falls_back
    assert learner.call_steps(spec.batch_size) > 1 and learner.xla_loop is whole_loop
    if falls_back:
        monkeypatch.delenv("EWC_XLA")
        plain, learner = _run(spec, tmp_path)
        assert not learner.xla and plain == first


def test_the_setting_and_the_model_choose_the_step(monkeypatch: pytest.MonkeyPatch) -> None:
    mlp, lenet = ExperimentSpec(**JOBS[0][1]), ExperimentSpec(dataset="mnist-5k", model="lenet")
    monkeypatch.delenv("EWC_XLA", raising=False)
    assert not Learner(mlp).xla and not Learner(lenet).xla
    monkeypatch.setenv("EWC_XLA", "1")
    assert Learner(mlp).xla and not Learner(lenet).xla
    assert Learner(lenet, xla=True).xla


class _NotCompilable(Learner):
    """An update with an op XLA has no kernel for (a Python function in the graph)."""

    def _update_on(self, x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        y = tf.numpy_function(lambda v: v, [y], tf.int32, stateful=False)
        y.set_shape([None])
        return super()._update_on(x, y)


def test_a_graph_xla_cannot_compile_falls_back_to_the_plain_step() -> None:
    spec = ExperimentSpec(**JOBS[0][1])
    learner, plain = _NotCompilable(spec, xla=True), _NotCompilable(spec, xla=False)
    x = tf.random.stateless_uniform((300, *spec.input_shape), seed=(1, 2))
    y = tf.constant(np.arange(300) % 10, tf.int32)
    order = np.arange(300)
    for each in (learner, plain):
        each.start_task(1)
        each.train_epoch(x, y, order, lambda: False)
    assert not learner.xla and learner.trace_count == 1
    for a, b in zip(learner.weights, plain.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


class _LoopNotCompilable(Learner):
    """A batch XLA cannot lower (a Python function in the graph) but an update it can."""

    def _step(self, x_all: tf.Tensor, y_all: tf.Tensor, idx: tf.Tensor) -> tf.Tensor:
        idx = tf.numpy_function(lambda v: v, [idx], tf.int32, stateful=False)
        idx.set_shape([None])
        return super()._step(x_all, y_all, idx)


def test_a_loop_xla_cannot_compile_calls_the_xla_update_with_the_per_batch_bits() -> None:
    spec = ExperimentSpec(**JOBS[0][1])
    x = tf.random.stateless_uniform((300, *spec.input_shape), seed=(1, 2))
    y = tf.constant(np.arange(300) % 10, tf.int32)
    order = np.random.default_rng(0).permutation(300)
    loop, per_batch = _LoopNotCompilable(spec, xla=True), _LoopNotCompilable(spec, xla=True, steps_per_call=1)
    losses = []
    for each in (loop, per_batch):
        each.spec = spec.model_copy(update={"batch_size": 64})  # 4 full batches, a short one
        each.start_task(1)
        losses.append([each.train_epoch(x, y, order, lambda: False) for _ in range(2)])
    assert loop.xla and not loop.xla_loop and loop.call_steps(64) > 1
    assert per_batch.xla and not per_batch.xla_loop
    assert per_batch._train_steps.experimental_get_tracing_count() == 0
    assert loop.trace_count == 1 and loop._train_steps.experimental_get_tracing_count() == 1
    assert losses[0] == losses[1]
    for a, b in zip(loop.weights, per_batch.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
