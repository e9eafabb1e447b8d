"""Several steps per compiled call (`EWC_STEPS_PER_CALL`, `Learner.train_steps`): an epoch's
full batches run k at a time in one graph loop, which calls the same traced step as a single
step does. The default ("auto": the whole epoch for these mlps) gives every loss and accuracy
of the per-batch step (k = 1) bit for bit, on every method; the step is traced once, the
loop once, whatever k or the batch size; `should_stop` is polled between calls.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf

from continual_core.compiled import LearnerCache, graph_key
from continual_core.events import StopRequested
from continual_core.learner import Learner
from continual_core.spec import ExperimentSpec
from continual_core.trainer import train
from tests.continual_core.test_compile_once import BASE, outcome

SMALL = {**BASE, "batch_size": 64}  # ≈ 11 full batches and a short one per task
SPECS: dict[str, dict[str, Any]] = {
    "ewc": {**SMALL, "dataset_update": "permute", "ewc": {"lambda": 7}, "seed": 2},
    "replay+augment": {**SMALL, "dataset_update": "switch", "replay": {"buffer": 100},
                       "augment": True, "seed": 0},
    "multi": {**SMALL, "dataset_update": "switch", "heads": "multi", "ewc": {"lambda": 300},
              "lwf": {"alpha": 0.3}, "mas": {}, "incdet": {}, "seed": 1},
    "agem": {**SMALL, "dataset_update": "permute", "agem": {"buffer": 100}, "seed": 7},
    "fim": {**SMALL, "dataset_update": "permute", "fim": {"threshold": 1e-3}, "fisher": "sampled"},
    "si": {**SMALL, "dataset_update": "permute", "si": {"c": 0.7}, "seed": 4},
}  # fmt: skip


def _run(spec: ExperimentSpec, data: Path) -> tuple[dict, Learner]:
    cache = LearnerCache()
    result = outcome(train(spec, dataset_cache=data, learners=cache))
    return result, cache._learners[graph_key(spec)]  # type: ignore[index]


def _counts(learner: Learner) -> list[int]:
    return [learner.trace_count, learner._train_step.experimental_get_tracing_count(),
            learner._train_steps.experimental_get_tracing_count()]  # fmt: skip


@pytest.mark.parametrize("name", list(SPECS))
def test_the_loop_gives_the_bits_of_the_per_batch_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.delenv("EWC_XLA", raising=False)
    spec = ExperimentSpec(**SPECS[name])
    monkeypatch.setenv("EWC_STEPS_PER_CALL", "1")
    per_batch, single = _run(spec, tmp_path)
    monkeypatch.delenv("EWC_STEPS_PER_CALL")  # the default: auto
    looped, learner = _run(spec, tmp_path)
    assert learner.call_steps(64) > 11 and single.call_steps(64) == 1
    assert looped == per_batch  # every loss and accuracy, bit for bit
    assert _counts(learner) == [1, 1, 1] and _counts(single) == [1, 1, 0]
    if name in ("ewc", "multi"):  # k = 3: several calls an epoch, a last one of fewer rows
        monkeypatch.setenv("EWC_STEPS_PER_CALL", "3")
        threes, learner = _run(spec, tmp_path)
        assert learner.call_steps(64) == 3 and threes == per_batch
        assert _counts(learner) == [1, 1, 1]


def test_a_kept_learner_traces_nothing_again_for_another_batch_size(tmp_path: Path) -> None:
    cache = LearnerCache()
    first = {**SPECS["ewc"], "batch_size": 128}
    for body in (first, {**SPECS["ewc"], "seed": 9}, {**first, "batch_size": 200}):
        train(ExperimentSpec(**body), dataset_cache=tmp_path, learners=cache)
    (learner,) = cache._learners.values()
    assert cache.hits == 2 and _counts(learner) == [1, 1, 1]


def test_should_stop_is_polled_before_every_call() -> None:
    """325 examples in batches of 32, 3 steps a call: calls of 3, 3, 3, 1 full batches and
    the short one of 5. A stop at the second poll leaves exactly the first call's 3 steps."""
    spec = ExperimentSpec(**{**BASE, "dataset_update": "permute", "batch_size": 32})
    x = tf.random.stateless_uniform((325, *spec.input_shape), seed=(1, 2))
    y = tf.constant(np.arange(325) % 10, tf.int32)
    learner = Learner(spec, steps_per_call=3)
    learner.start_task(1)
    polls: list[int] = []
    loss = learner.train_epoch(x, y, np.arange(325), lambda: bool(polls.append(1)))
    assert len(polls) == 5 and int(learner.optimizer.iterations.numpy()) == 11 and np.isfinite(loss)
    polls.clear()
    with pytest.raises(StopRequested):
        learner.train_epoch(x, y, np.arange(325), lambda: bool(polls.append(1)) or len(polls) == 2)
    assert int(learner.optimizer.iterations.numpy()) == 14


def test_the_setting_chooses_the_steps_per_call(monkeypatch: pytest.MonkeyPatch) -> None:
    mlp = ExperimentSpec(dataset="mnist-5k", model="mlp")
    lenet = ExperimentSpec(dataset="mnist-5k", model="lenet")
    monkeypatch.delenv("EWC_STEPS_PER_CALL", raising=False)
    assert Learner(mlp).call_steps(256) >= 13  # the mlp's whole epoch of 3,200 examples
    assert Learner(lenet).call_steps(256) == 1  # conv: one step a call
    monkeypatch.setenv("EWC_STEPS_PER_CALL", "4")
    assert Learner(mlp).call_steps(256) == 4 and Learner(lenet).call_steps(256) == 4
    assert Learner(mlp, steps_per_call=1).call_steps(256) == 1
    for bad in ("0", "-2", "many"):
        monkeypatch.setenv("EWC_STEPS_PER_CALL", bad)
        with pytest.raises(ValueError, match="EWC_STEPS_PER_CALL"):
            Learner(mlp)
