"""The XLA-compiled update (`EWC_XLA=1`, a model without convolutions): every method
combination runs, under XLA where it compiles, and a run gives the same bits as a rerun of
its spec; A-GEM (a reference batch of a size read from a variable, inside the update) falls
back to the plain step and gives exactly the result without `EWC_XLA`; conv models and an
unset `EWC_XLA` take the plain step.
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


@pytest.mark.parametrize("body", SPECS, ids=["ewc", "si+replay", "fim+agem", "multi", "augment"])
def test_xla_step_is_used_and_a_rerun_gives_the_same_bits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: dict
) -> None:
    monkeypatch.setenv("EWC_XLA", "1")
    spec = ExperimentSpec(**body)
    (first, learner), (again, _) = _run(spec, tmp_path), _run(spec, tmp_path)
    assert first == again
    assert learner.trace_count == 1
    falls_back = "agem" in body
    assert learner.xla is not falls_back
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
