"""Scenarios: one head per task (task-IL) or one shared head, the mlp's width, joint training.

Multi-head: the heads' layout, the loss and the Fisher over each example's own head (the
other units get no gradient, so untrained heads keep their initial weights), the accuracy
matrix read by each task's head, one trace, and checkpoint/resume bit-exact.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from continual_core.datasets import load_dataset
from continual_core.fisher import fisher_naive
from continual_core.heads import head_layout
from continual_core.learner import Learner
from continual_core.spec import ExperimentSpec, validation_problems
from continual_core.tasks import make_tasks, training_set
from continual_core.trainer import train
from tests.continual_core.test_trainer import Recorder, _rows

DIGITS = {"dataset": "digits", "batch_size": 64, "seed": 4}


def _problems(**body) -> list[tuple[str, str]]:
    with pytest.raises(Exception) as err:
        ExperimentSpec(**body)
    return validation_problems(err.value)


def test_head_layout_per_stream() -> None:
    assert head_layout(ExperimentSpec(**DIGITS, dataset_update="switch", splits=5, epochs=5)) is None
    split = head_layout(ExperimentSpec(**DIGITS, dataset_update="switch", splits=5, epochs=5, heads="multi"))
    # disjoint classes keep their unit: the same 10 outputs as a shared head
    assert split is not None and split.width == 10 and split.units == split.classes
    assert split.units[1] == (2, 3) and split.encode(np.array([3, 2]), 2).tolist() == [3, 2]
    perm = head_layout(ExperimentSpec(**DIGITS, dataset_update="permute", splits=3, epochs=3, heads="multi"))
    assert perm is not None and perm.width == 30 and perm.units[2] == tuple(range(20, 30))
    assert perm.encode(np.array([0, 9]), 3).tolist() == [20, 29]
    assert perm.task_of_unit.tolist() == [0] * 10 + [1] * 10 + [2] * 10
    inc = head_layout(ExperimentSpec(**DIGITS, dataset_update="increment", splits=2, epochs=2, heads="multi"))
    assert inc is not None and inc.width == 15 and inc.units == (tuple(range(5)), tuple(range(5, 15)))
    with pytest.raises(ValueError, match="outside the classes of task 1"):
        split.encode(np.array([5]), 1)


def test_spec_fields_defaults_and_refusals() -> None:
    spec = ExperimentSpec()
    assert (spec.heads, spec.hidden, spec.joint, spec.scenario) == ("shared", [100, 100], False, "single-task")
    assert ExperimentSpec(model="lenet").hidden is None
    assert ExperimentSpec(hidden="400, 400").hidden == [400, 400]
    body = ExperimentSpec(dataset_update="switch", heads="multi", hidden=[50]).to_json_dict()
    assert (body["heads"], body["hidden"], body["joint"]) == ("multi", [50], False)
    assert ExperimentSpec.model_validate(body).scenario == "task-IL"
    assert ExperimentSpec(dataset_update="switch").scenario == "class-IL"
    assert ExperimentSpec(dataset_update="permute", heads="multi").scenario == "task-IL"
    assert ExperimentSpec(dataset_update="permute").scenario == "domain-IL"
    assert _problems(model="lenet", hidden=[10]) == [("hidden", "lenet has a fixed architecture; only mlp takes hidden widths")]
    assert _problems(hidden="400,x")[0][0] == "hidden" and "such as 400,400" in _problems(hidden="400,x")[0][1]
    assert _problems(hidden=[0])[0][0] == "hidden.0" and _problems(hidden=[])[0][0] == "hidden"
    assert _problems(heads="many")[0] == ("heads", "'many' is not allowed; choose one of 'shared' or 'multi'")
    assert _problems(heads="multi")[0][0] == "heads"
    assert _problems(joint=True, dataset_update="increment")[0][0] == "joint"
    joint_ewc = _problems(joint=True, dataset_update="switch", ewc={})
    assert joint_ewc == [("joint", ("joint training is the upper bound (every task's data, no "
                                   "protection needed); it takes no method, got ewc"))]  # fmt: skip


def test_a_sweep_grid_line_sets_widths_and_heads() -> None:
    from store.sweeps import expand_grid, parse_grid_entries

    grid = parse_grid_entries(["hidden=100x100,400x400", "heads=shared,multi"])
    specs = [ExperimentSpec(**spec) for _, spec in expand_grid({"dataset_update": "switch"}, grid)]
    assert [(s.hidden, s.scenario) for s in specs] == [
        ([100, 100], "class-IL"), ([100, 100], "task-IL"), ([400, 400], "class-IL"), ([400, 400], "task-IL")]


def test_hidden_widths_build_the_mlp() -> None:
    learner = Learner(ExperimentSpec(**DIGITS, hidden=[7, 5, 3]))
    kernels = [tuple(v.shape) for v in learner.weights if len(v.shape) == 2]
    assert kernels == [(64, 7), (7, 5), (5, 3), (3, 10)]


def _digits(tmp_path: Path, **extra):
    spec = ExperimentSpec(**DIGITS, **extra)
    return spec, make_tasks(spec, load_dataset(spec, tmp_path))


def test_joint_training_set_is_the_union_with_each_task_on_its_head(tmp_path: Path) -> None:
    spec, tasks = _digits(tmp_path, dataset_update="permute", splits=3, epochs=3, heads="multi", joint=True)
    learner = Learner(spec)
    x, y = training_set(tasks, 3, joint=True, encode=learner.labels)
    assert len(y) == sum(len(t.train_y) for t in tasks)
    n = len(tasks[0].train_y)
    assert np.array_equal(x[2 * n :], tasks[2].train_x) and np.array_equal(y[2 * n :], tasks[2].train_y + 20)
    assert np.array_equal(y[:n], tasks[0].train_y)
    own_x, own_y = training_set(tasks, 2, joint=False, encode=learner.labels)
    assert np.array_equal(own_x, tasks[1].train_x) and np.array_equal(own_y, tasks[1].train_y + 10)


def test_each_task_trains_and_is_evaluated_on_its_own_head(tmp_path: Path) -> None:
    spec, tasks = _digits(tmp_path, dataset_update="permute", splits=3, epochs=3, heads="multi", ewc={})
    learner = Learner(spec)
    kernel, bias = learner.model.get_layer("logits").kernel, learner.model.get_layer("logits").bias
    before = kernel.numpy()
    x, y = training_set(tasks, 1, joint=False, encode=learner.labels)
    learner.start_task(1)
    learner.train_epoch(tf.constant(x), tf.constant(y), np.arange(len(y)), lambda: False)
    after = kernel.numpy()
    # only task 1's head learned: the units of the other heads got no gradient at all
    assert not np.array_equal(after[:, :10], before[:, :10])
    assert np.array_equal(after[:, 10:], before[:, 10:]) and not np.any(bias.numpy()[10:])
    # accuracy of segment j = argmax over task j's head only, against the class labels
    test = [t.split("test") for t in tasks]
    xs, ys = np.concatenate([t[0] for t in test]), np.concatenate([t[1] for t in test])
    bounds = np.concatenate([[0], np.cumsum([len(t[1]) for t in test])]).tolist()
    logits = learner.model(xs, training=False).numpy()
    expected = [float(np.mean(logits[a:b, 10 * j : 10 * j + 10].argmax(1) == ys[a:b]))
                for j, (a, b) in enumerate(itertools.pairwise(bounds))]  # fmt: skip
    assert learner.accuracy(tf.constant(xs), ys, bounds) == expected
    # the Fisher is taken over each example's own head (reference: the head's columns alone)
    sub = x[:6]
    fisher = learner.estimators["fisher"].diagonal.estimate(sub, y[:6], (0, 1))
    head = ExperimentSpec(**DIGITS, dataset_update="permute", splits=3, epochs=3)
    reference_learner = Learner(head)
    for v, w in zip(reference_learner.model.variables, learner.model.variables):
        v.assign(w.numpy()[..., :10] if v.path.endswith("logits/kernel") or v.path.endswith("logits/bias") else w)
    reference = fisher_naive(reference_learner.model, sub, y[:6], "empirical")
    np.testing.assert_allclose(fisher[-2].numpy()[:, :10], reference[-2], rtol=1e-4, atol=1e-9)
    np.testing.assert_allclose(fisher[0].numpy(), reference[0], rtol=1e-4, atol=1e-9)
    assert not np.any(fisher[-2].numpy()[:, 10:])


MULTI = {**DIGITS, "dataset_update": "switch", "splits": 3, "epochs": 6, "heads": "multi",
         "ewc": {"lambda": 5.0}, "fim": {"threshold": 1e-3}, "augment": True}  # fmt: skip


def test_multi_head_run_traces_once_and_resumes_bit_exact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from continual_core import trainer

    learners: list[Learner] = []

    class Kept(Learner):  # the real learner, kept to read its trace counts
        def __init__(self, spec: ExperimentSpec):
            super().__init__(spec)
            learners.append(self)

    monkeypatch.setattr(trainer, "Learner", Kept)
    whole = train(ExperimentSpec(**MULTI), dataset_cache=tmp_path)
    monkeypatch.undo()
    learner = learners[0]
    assert learner.trace_count == 1 and learner._train_step.experimental_get_tracing_count() == 1
    assert learner._predict_heads.experimental_get_tracing_count() == 1
    assert learner.fisher is not None and learner.fisher.squared_gradient_sum.experimental_get_tracing_count() == 1
    assert whole["scenario"] == "task-IL" and whole["spec"]["heads"] == "multi"
    ckpt = tmp_path / "ckpt"
    with pytest.raises(Exception, match="stop requested"):
        train(ExperimentSpec(**MULTI), dataset_cache=tmp_path, callback=Recorder(stop_in_task=2),
              checkpoint_dir=ckpt)  # fmt: skip
    resumed = train(ExperimentSpec(**MULTI), dataset_cache=tmp_path, checkpoint_dir=ckpt)
    assert resumed["accuracy_matrix"] == whole["accuracy_matrix"] and _rows(resumed) == _rows(whole)


def test_joint_run_resumes_bit_exact(tmp_path: Path) -> None:
    spec = {**DIGITS, "dataset_update": "permute", "splits": 3, "epochs": 6, "joint": True}
    whole = train(ExperimentSpec(**spec), dataset_cache=tmp_path)
    ckpt = tmp_path / "ckpt"
    with pytest.raises(Exception, match="stop requested"):
        train(ExperimentSpec(**spec), dataset_cache=tmp_path, callback=Recorder(stop_in_task=3),
              checkpoint_dir=ckpt)  # fmt: skip
    resumed = train(ExperimentSpec(**spec), dataset_cache=tmp_path, checkpoint_dir=ckpt)
    assert resumed["accuracy_matrix"] == whole["accuracy_matrix"] and _rows(resumed) == _rows(whole)
    assert whole["scenario"] == "domain-IL"
    # joint keeps task 1: its final accuracy is close to its accuracy right after training it
    matrix = np.asarray(whole["accuracy_matrix"])
    assert matrix[-1, 0] >= matrix[0, 0] - 0.05
