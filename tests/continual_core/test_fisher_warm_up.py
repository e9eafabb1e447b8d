"""The Fisher's background warm-up (a cold run's first estimate compiled ahead of need):
it changes no variable and no random stream, leaves every result bit-identical, traces
each compiled function once in all, and a worker's kept learner never warms up again."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf

from continual_core import trainer
from continual_core.compiled import LearnerCache, graph_key, learner_variables
from continual_core.fisher import FisherDiagonal
from continual_core.learner import Learner
from continual_core.spec import ExperimentSpec
from continual_core.trainer import train

#: Two tasks of one epoch each: the warm-up starts with task 1, then one estimate.
SPEC: dict[str, Any] = {"dataset": "digits", "dataset_update": "permute", "splits": 2, "epochs": 2,
                        "batch_size": 256, "hidden": [32], "ewc": {"samples": 40}}  # fmt: skip


def _state(learner: Learner) -> tuple[list[np.ndarray], Any, Any]:
    values = [np.array(v.numpy()) for v in learner_variables(learner)]
    return values, np.random.get_state()[1].copy(), random.getstate()


CASES = [({}, "auto"), ({"fisher": "sampled", "heads": "multi"}, "auto"), ({"fisher": "sampled"}, "vectorised")]


@pytest.mark.parametrize(("extra", "path"), CASES)
def test_warm_up_changes_nothing_and_traces_once(extra: dict, path: str) -> None:
    spec = ExperimentSpec(**{**SPEC, **extra})
    learner = Learner(spec)
    fisher = learner.fisher
    assert fisher is not None
    if path != "auto":  # the same estimator on the vectorised path (conv models take it)
        fisher = learner.estimators["fisher"].diagonal = FisherDiagonal(learner.model, spec.fisher, None, path)
    rng = np.random.default_rng(0)
    x = rng.random((40, *spec.input_shape), dtype=np.float32)
    y = learner.labels(rng.integers(0, 2, 40), 1).astype(np.int32)
    learner.start_task(1)
    keras.utils.set_random_seed(5)  # then every generator's state is compared
    # TF's global generator, set (a run's `train()` enables op determinism, after which
    # reading it unset raises: the order of the tests must not matter).
    tf.random.set_global_generator(tf.random.Generator.from_seed(5))
    before = _state(learner)
    tf_draw = tf.random.get_global_generator().state.numpy().copy()
    fisher.warm_up([40, 7])
    fisher.join_warm_up()
    after = _state(learner)
    for a, b in zip(before[0], after[0], strict=True):
        np.testing.assert_array_equal(a, b)
    assert np.array_equal(before[1], after[1]) and before[2] == after[2]
    np.testing.assert_array_equal(tf_draw, tf.random.get_global_generator().state.numpy())
    got = [v.numpy() for v in fisher.estimate(x, y, (3, 4))]

    cold = Learner(spec)  # the same weights, no warm-up
    other = cold.fisher if path == "auto" else FisherDiagonal(cold.model, spec.fisher, None, path)
    assert other is not None
    for a, b in zip(got, [v.numpy() for v in other.estimate(x, y, (3, 4))], strict=True):
        np.testing.assert_array_equal(a, b)  # bit for bit
    fisher.warm_up([40])  # once per estimator: nothing starts again
    assert fisher._warm_up is None
    counts = [fisher.squared_gradient_sum.experimental_get_tracing_count(),
              fisher.labels.experimental_get_tracing_count()]  # fmt: skip
    assert counts == [1, 1]


def _outcome(result: dict) -> tuple:
    return result["accuracy_matrix"], [e["loss"] for e in result["epochs"]], result["initial_accuracy"]


def test_runs_are_bit_identical_with_and_without_warm_up(tmp_path: Path, monkeypatch: Any) -> None:
    data = tmp_path / "data"
    spec = ExperimentSpec(**{**SPEC, "fisher": "sampled", "heads": "multi", "splits": 3, "epochs": 3})
    started: list[list[int]] = []
    warm_up = FisherDiagonal.warm_up

    def recorded(self: FisherDiagonal, sizes: Any = (1,)) -> None:
        if not self.warmed_up:
            started.append(sorted(sizes))
        warm_up(self, sizes)

    monkeypatch.setattr(FisherDiagonal, "warm_up", recorded)
    cache = LearnerCache()
    warmed = [train(spec, dataset_cache=data, learners=cache) for _ in range(2)]  # fresh, then kept
    assert started == [[40]]  # the first job only: the kept learner is compiled already
    learner = cache._learners[graph_key(spec)]  # type: ignore[index]
    assert learner.fisher is not None and learner.fisher._warm_up is None
    counts = [learner.fisher.squared_gradient_sum.experimental_get_tracing_count(),
              learner.fisher.labels.experimental_get_tracing_count(), learner.trace_count]  # fmt: skip
    assert counts == [1, 1, 1]  # two jobs, two estimates each, one warm-up: one trace each

    monkeypatch.setattr(trainer, "_warm_up", lambda learner: None)
    plain = train(spec, dataset_cache=data)
    assert len(started) == 1
    assert _outcome(warmed[0]) == _outcome(plain) == _outcome(warmed[1])  # bit for bit
