"""Compile once per worker (`continual_core.compiled`): a job run on a learner kept from an
earlier job of the same graph gives the result of a fresh run of its spec, bit for bit, and
traces nothing again; jobs of another graph get their own learner.

The fresh results come from a new Python process (plain `train()`, no cache); the cached
ones from this process, each job after a job of the same graph with other hyper-parameters
(seed, learning rate, λ, c, α, thresholds, batch size) and after a job of another graph.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from continual_core.compiled import LearnerCache, graph_key, learner_variables
from continual_core.events import Callback, StopRequested, TaskEnd
from continual_core.learner import Learner
from continual_core.methods import registered
from continual_core.spec import ExperimentSpec
from continual_core.trainer import train
from tests.continual_core.toy_method import Toy

ROOT = Path(__file__).resolve().parents[2]
BASE: dict[str, Any] = {
    "dataset": "digits",
    "epochs": 2,  # two tasks of one epoch: one consolidation, then a penalised task
    "splits": 2,
    "batch_size": 256,
    "hidden": [32],
}

#: (graph, spec): the two jobs of a graph differ only in values that are variables (seed,
#: learning rate, λ, c, α, thresholds, batch size, replay ratio, memory strategy).
JOBS: list[tuple[str, dict[str, Any]]] = [
    ("ewc", {**BASE, "dataset_update": "permute", "ewc": {"lambda": 7}, "seed": 2,
             "learning_rate": 0.003}),
    ("si+replay", {**BASE, "dataset_update": "switch", "si": {"c": 0.7}, "seed": 0,
                   "replay": {"buffer": 100, "ratio": 1, "strategy": "balanced"}}),
    ("ewc", {**BASE, "dataset_update": "permute", "ewc": {}, "seed": 1}),
    ("si+replay", {**BASE, "dataset_update": "switch", "si": {"c": 3, "xi": 0.01,
                   "normalize": False}, "replay": {"buffer": 100}, "seed": 5, "batch_size": 128}),
    ("fim+agem", {**BASE, "dataset_update": "permute", "fim": {"threshold": 1e-3, "growth": 0},
                  "agem": {"buffer": 100}, "fisher": "sampled", "seed": 7}),
    ("multi", {**BASE, "dataset_update": "switch", "heads": "multi", "seed": 0,
               "ewc": {"lambda": 300}, "lwf": {"alpha": 0.3}, "mas": {}, "incdet": {}}),
    ("fim+agem", {**BASE, "dataset_update": "permute", "fim": {}, "fisher": "sampled",
                  "agem": {"buffer": 100, "strategy": "balanced"}, "seed": 1, "batch_size": 128,
                  "reset_optimizer": True}),
    ("multi", {**BASE, "dataset_update": "switch", "heads": "multi", "seed": 6,
               "ewc": {"lambda": 30, "gamma": 0.5}, "lwf": {"alpha": 2},
               "mas": {"lambda": 0.5, "samples": 50}, "incdet": {"threshold": 3e-4}}),
]  # fmt: skip
#: The jobs that run on a kept learner (the second of each graph): compared with fresh runs.
REUSED = [2, 3, 6, 7]


def outcome(result: dict) -> dict:
    """What must not differ by a bit: every accuracy and every epoch's loss."""
    return {
        "accuracy_matrix": result["accuracy_matrix"],
        "initial_accuracy": result["initial_accuracy"],
        "epochs": [[e["loss"], e["val_accuracy"]] for e in result["epochs"]],
    }


def fresh_outcomes(cache: str) -> list[dict]:
    """The REUSED jobs trained as `ewc run` trains them (a new learner each), in order."""
    specs = [ExperimentSpec(**JOBS[i][1]) for i in REUSED]
    return [outcome(train(spec, dataset_cache=Path(cache))) for spec in specs]


class StopAfterTask1(Callback):
    def __init__(self) -> None:
        self.stop = False

    def on_task_end(self, event: TaskEnd) -> None:
        self.stop = True

    def should_stop(self) -> bool:
        return self.stop


def test_graph_key_is_the_shape_not_the_values() -> None:
    base = ExperimentSpec(**JOBS[2][1])
    same = [{"seed": 9}, {"learning_rate": 0.01}, {"epochs": 7}, {"batch_size": 16},
            {"ewc": {"lambda": 3, "gamma": 1, "samples": 10}}, {"name": "x", "tags": ["a"]}]  # fmt: skip
    for change in same:
        assert graph_key(ExperimentSpec(**{**JOBS[2][1], **change})) == graph_key(base), change
    other = [{"hidden": [50]}, {"dataset_update": "switch"}, {"fisher": "seed"},
             {"augment": True}, {"fim": {}}, {"heads": "multi"}, {"dataset": "mnist-5k"}]  # fmt: skip
    for change in other:
        assert graph_key(ExperimentSpec(**{**JOBS[2][1], **change})) != graph_key(base), change
    replay = {**BASE, "dataset_update": "switch", "replay": {"buffer": 100}}
    assert graph_key(ExperimentSpec(**replay)) != graph_key(
        ExperimentSpec(**{**replay, "replay": {"buffer": 200}})
    )
    lwf = {**BASE, "dataset_update": "switch", "lwf": {}}
    assert graph_key(ExperimentSpec(**lwf)) != graph_key(
        ExperimentSpec(**{**lwf, "lwf": {"temperature": 3}})  # T: a constant of the graph
    )


def test_a_method_without_values_is_never_reused(tmp_path: Path) -> None:
    with registered(Toy):
        spec = ExperimentSpec(**BASE, dataset_update="permute", toy={})
        assert graph_key(spec) is None
        cache = LearnerCache()
        assert cache.learner(spec) is not cache.learner(spec) and len(cache) == 0
    off = LearnerCache(enabled=False)
    spec = ExperimentSpec(**JOBS[0][1])
    assert off.learner(spec) is not off.learner(spec) and len(off) == 0


def test_cached_jobs_are_bit_identical_to_fresh_runs_and_trace_nothing_again(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    train(ExperimentSpec(**BASE), dataset_cache=data)  # the dataset file, before both start
    code = (
        "import json, sys; from tests.continual_core.test_compile_once import fresh_outcomes; "
        "json.dump(fresh_outcomes(sys.argv[1]), sys.stdout)"
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    fresh = subprocess.Popen(  # meanwhile, the same jobs here on kept learners
        [sys.executable, "-c", code, str(data)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        cache = LearnerCache()
        first: dict[str, Learner] = {}  # graph → the learner its first job built
        got = {}
        for i, (graph, spec) in enumerate(JOBS):
            result = train(ExperimentSpec(**spec), dataset_cache=data, learners=cache)
            learner = cache._learners[graph_key(ExperimentSpec(**spec))]  # type: ignore[index]
            first.setdefault(graph, learner)
            assert learner is first[graph], graph  # the same learner: compiled once
            got[i] = outcome(result)
        # a job stopped after task 1 and resumed from its checkpoint, on the kept learner
        spec = ExperimentSpec(**JOBS[2][1])
        with pytest.raises(StopRequested):
            train(spec, dataset_cache=data, callback=StopAfterTask1(),
                  checkpoint_dir=tmp_path / "ck", learners=cache)  # fmt: skip
        resumed = train(spec, dataset_cache=data, checkpoint_dir=tmp_path / "ck", learners=cache)
        stdout, _ = fresh.communicate(timeout=900)
    finally:
        fresh.kill()
    assert fresh.returncode == 0
    expected = dict(zip(REUSED, json.loads(stdout)))
    for i in REUSED:
        assert got[i] == expected[i], f"{JOBS[i][0]}: {JOBS[i][1]}"  # bit for bit
    assert outcome(resumed) == expected[2]
    assert cache.hits == 6 and cache.misses == 4 and len(cache) == 4

    for graph, learner in first.items():
        counts = [learner.trace_count, learner._train_step.experimental_get_tracing_count()]
        counts.append(learner._predict_heads.experimental_get_tracing_count() if learner.heads
                      else learner._predict.experimental_get_tracing_count())  # fmt: skip
        if learner.fisher is not None:
            counts.append(learner.fisher.squared_gradient_sum.experimental_get_tracing_count())
            counts.append(learner.fisher.labels.experimental_get_tracing_count())
        assert counts == [1] * len(counts), (graph, counts)  # two jobs or more, one trace each


def test_every_variable_is_reinitialised() -> None:
    """A kept learner whose every variable was overwritten, re-initialised for the next job,
    holds exactly what a fresh learner of that job holds (weights, Adam, every method)."""
    import numpy as np

    cache = LearnerCache()
    dirty = cache.learner(ExperimentSpec(**JOBS[5][1]))
    variables = learner_variables(dirty)
    assert len(variables) > 30
    for v in variables:
        v.assign(np.ones(v.shape, v.dtype.name if hasattr(v.dtype, "name") else v.dtype))
    nxt = ExperimentSpec(**JOBS[7][1])
    kept = cache.learner(nxt)
    assert kept is dirty and cache.hits == 1
    for a, b in zip(learner_variables(kept), learner_variables(Learner(nxt)), strict=True):
        assert np.array_equal(np.asarray(a.numpy()), np.asarray(b.numpy())), a.path
    methods = kept.methods
    assert float(methods["ewc"].quadratic.half_lambda.numpy()) == 15.0
    assert float(methods["lwf"].alpha.numpy()) == 2.0
    assert float(methods["incdet"].threshold.numpy()) == np.float32(3e-4)
    assert kept.spec is nxt and methods["ewc"].config is nxt.methods["ewc"]
