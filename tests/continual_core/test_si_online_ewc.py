"""SI's path integral and importance against NumPy, online EWC's running Fisher and the
normalised (mean) EWC penalty against NumPy, their defaults and flags, one trace, and
bit-exact resume for SI and online EWC."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from pydantic import ValidationError
from typer.testing import CliRunner

from cli.flags import spec_from_flags
from cli.main import app
from continual_core.datasets import load_dataset
from continual_core.learner import Learner
from continual_core.methods.ewc import ElasticWeightConsolidation
from continual_core.methods.si import PathIntegral
from continual_core.spec import ExperimentSpec
from continual_core.tasks import make_tasks
from continual_core.trainer import train

SMALL = {"dataset": "digits", "dataset_update": "permute", "splits": 3, "epochs": 6,
         "batch_size": 64, "seed": 3}  # fmt: skip


def _variables(rng: np.random.Generator) -> list[tf.Variable]:
    return [tf.Variable(rng.normal(size=(4, 3)).astype(np.float32)),
            tf.Variable(rng.normal(size=(3,)).astype(np.float32))]  # fmt: skip


@pytest.mark.parametrize("normalize", [False, True])
def test_si_path_integral_and_importance_match_numpy(normalize: bool) -> None:
    rng = np.random.default_rng(0)
    theta = _variables(rng)
    si = PathIntegral(theta, c=0.7, xi=0.05)
    accumulate = tf.function(si.accumulate)  # as in the compiled step
    ref_theta = [v.numpy().astype(np.float64) for v in theta]
    ref_anchor = [t.copy() for t in ref_theta]
    ref_big = [np.zeros_like(t) for t in ref_theta]
    for n in (1, 2, 3):
        si.start(theta)
        ref_small = [np.zeros_like(t) for t in ref_theta]
        for _step in range(5):
            grads = [rng.normal(size=t.shape).astype(np.float32) for t in ref_theta]
            # any update rule: the path integral uses the change that happened
            new = [t - 0.1 * g + 0.02 * rng.normal(size=t.shape) for t, g in zip(ref_theta, grads)]
            for v, n in zip(theta, new):
                v.assign(n.astype(np.float32))
            accumulate([tf.constant(g) for g in grads], theta)
            ref_small = [s - g * (n - t) for s, g, n, t in zip(ref_small, grads, new, ref_theta)]
            ref_theta = [v.numpy().astype(np.float64) for v in theta]
        for s, ref in zip(si.omega, ref_small):
            np.testing.assert_allclose(s.numpy(), ref, rtol=1e-4, atol=1e-5)
        si.consolidate(theta, n if normalize else None)
        terms = [s / ((t - a) ** 2 + 0.05) for s, t, a in zip(ref_small, ref_theta, ref_anchor)]
        keep = (n - 1) / n if normalize else 1.0
        ref_big = [keep * b + (1 - keep if normalize else 1.0) * term for b, term in zip(ref_big, terms)]
        ref_anchor = [t.copy() for t in ref_theta]
        for big, star, small, rb, ra in zip(si.importance, si.anchor, si.omega, ref_big, ref_anchor):
            np.testing.assert_allclose(big.numpy(), rb, rtol=1e-4, atol=1e-4)
            np.testing.assert_allclose(star.numpy(), ra, rtol=1e-6)
            assert not small.numpy().any()  # ω starts again at zero
    for v in theta:
        v.assign(rng.normal(size=v.shape).astype(np.float32))
    want = 0.7 * sum(np.sum(b * (v.numpy() - a) ** 2) for b, v, a in zip(ref_big, theta, ref_anchor))
    assert np.isclose(float(si.penalty(theta)), want, rtol=1e-4)


def _consolidated(ewc: ElasticWeightConsolidation, theta: list, rng: np.random.Generator,
                  how: str, tasks: int = 4) -> list[tuple[list, list]]:  # fmt: skip
    """Consolidate `tasks` random (Fisher, optimum) pairs with `how`; returns them."""
    per_task = []
    for n in range(1, tasks + 1):
        fisher = [rng.random(v.shape).astype(np.float32) for v in theta]
        star = [rng.normal(size=v.shape).astype(np.float32) for v in theta]
        for v, s in zip(theta, star):
            v.assign(s)
        f = [tf.constant(x) for x in fisher]
        if how == "mean":
            ewc.consolidate_mean(f, theta, n)
        else:
            ewc.consolidate_online(f, theta, 0.6)
        per_task.append((fisher, star))
    for v in theta:
        v.assign(rng.normal(size=v.shape).astype(np.float32))
    return per_task


def test_online_ewc_is_one_penalty_at_the_latest_weights_with_the_running_fisher() -> None:
    rng = np.random.default_rng(1)
    theta = _variables(rng)
    ewc = ElasticWeightConsolidation(theta, lam=5.0)
    per_task = _consolidated(ewc, theta, rng, "online")
    running = [np.zeros(v.shape) for v in theta]
    for fisher, _ in per_task:
        running = [0.6 * r + f for r, f in zip(running, fisher)]
    latest = per_task[-1][1]
    want = 0.5 * 5.0 * sum(np.sum(r * (v.numpy() - s) ** 2) for r, v, s in zip(running, theta, latest))
    assert np.isclose(float(ewc.penalty(theta)), want, rtol=1e-4)
    np.testing.assert_allclose(ewc.fisher_sum[0].numpy(), running[0], rtol=1e-5)


def test_normalised_ewc_is_the_mean_of_the_finished_tasks_quadratics() -> None:
    rng = np.random.default_rng(2)
    theta = _variables(rng)
    ewc = ElasticWeightConsolidation(theta, lam=3.0)
    per_task = _consolidated(ewc, theta, rng, "mean")
    total = sum(np.sum(f * (v.numpy() - s) ** 2) for fisher, star in per_task for f, v, s in zip(fisher, theta, star))
    assert np.isclose(float(ewc.penalty(theta)), 0.5 * 3.0 * total / len(per_task), rtol=1e-4)


def test_defaults_and_explicit_values() -> None:
    default = ExperimentSpec(ewc={}, si={}).to_json_dict()
    assert default["ewc"] == {"lambda": 100.0, "samples": 100, "gamma": 0.9, "normalize": False}
    assert default["si"] == {"c": 3.0, "normalize": True, "xi": 1e-3}
    # an explicit λ means what it always meant: the plain sum over the finished tasks
    explicit = ExperimentSpec(ewc={"lambda": 0.01}).to_json_dict()["ewc"]
    assert explicit == {"lambda": 0.01, "samples": 100, "gamma": 1.0, "normalize": False}
    assert ExperimentSpec(ewc={"gamma": 0.5}).to_json_dict()["ewc"]["lambda"] == 100.0
    assert ExperimentSpec(ewc={"normalize": True}).to_json_dict()["ewc"]["gamma"] == 1.0
    # the stored spec reproduces itself
    assert ExperimentSpec(**ExperimentSpec(ewc={}).to_json_dict()).to_json_dict()["ewc"] == default["ewc"]
    for bad in ({"gamma": 0.5, "normalize": True}, {"gamma": 0}, {"gamma": 1.5}):
        with pytest.raises(ValidationError):
            ExperimentSpec(ewc=bad)
    with pytest.raises(ValidationError):
        ExperimentSpec(si={"xi": 0})
    flags = spec_from_flags(ewc=True, ewc_lambda=0.01).to_json_dict()["ewc"]
    assert flags["lambda"] == 0.01 and flags["normalize"] is False and flags["gamma"] == 1.0
    si = spec_from_flags(si=True, si_c=0.5, si_xi=0.01).to_json_dict()["si"]
    assert si == {"c": 0.5, "normalize": True, "xi": 0.01}


def test_ewc_run_has_the_si_and_gamma_flags() -> None:
    helptext = CliRunner().invoke(app, ["run", "--help"], env={"COLUMNS": "200"}).output
    for flag in ("--si", "--si-c", "--si-xi", "--ewc-gamma"):
        assert flag in helptext


def test_si_accumulates_the_applied_gradients_inside_the_compiled_step(tmp_path: Path) -> None:
    """ω after some compiled steps of task 2 (the penalty active) equals Σ −g·Δθ with g the
    gradient of loss + penalty recomputed eagerly at the weights before each step."""
    spec = ExperimentSpec(**{**SMALL, "epochs": 3}, si={"c": 0.5}, ewc={"gamma": 0.8})
    tasks = make_tasks(spec, load_dataset(spec, tmp_path))
    learner = Learner(spec)
    si = learner.methods["si"]
    for task in tasks[:2]:
        learner.start_task(task.index)
        x, y = tf.constant(task.train_x), tf.constant(task.train_y)
        ref = [np.zeros(v.shape) for v in learner.weights]
        for start in range(0, 5 * 64, 64):
            idx = np.arange(start, start + 64, dtype=np.int32)
            before = [v.numpy() for v in learner.weights]
            with tf.GradientTape() as tape:
                logits = learner.model(tf.gather(x, idx), training=True)
                loss = tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(
                    tf.gather(y, idx), logits, from_logits=True))  # fmt: skip
                loss += learner.methods["ewc"].penalty(None) + si.penalty(None)
            grads = tape.gradient(loss, learner.weights)
            learner._train_step(x, y, tf.constant(idx))
            ref = [r - g.numpy() * (v.numpy() - b) for r, g, v, b in zip(ref, grads, learner.weights, before)]
        for small, r in zip(si.path.omega, ref):
            np.testing.assert_allclose(small.numpy(), r, rtol=1e-3, atol=1e-7)
        learner.consolidate(task.train_x, task.train_y, task.index)
    assert learner.trace_count == 1
    assert any(np.abs(b.numpy()).sum() > 0 for b in si.path.importance)


@pytest.mark.parametrize("methods", [{"si": {"c": 0.5}}, {"ewc": {"lambda": 10.0, "gamma": 0.7}},
                                     {"ewc": {}, "si": {}}])  # fmt: skip
def test_stop_then_resume_is_bit_exact(methods: dict, tmp_path: Path) -> None:
    from continual_core.events import Callback, EpochEnd, StopRequested

    class StopInTask2(Callback):
        task = 0

        def on_epoch_end(self, event: EpochEnd) -> None:
            self.task = event.task

        def should_stop(self) -> bool:
            return self.task == 2

    spec = {**SMALL, **methods}
    whole = train(ExperimentSpec(**spec), dataset_cache=tmp_path)
    ckpt = tmp_path / "ckpt"
    with pytest.raises(StopRequested):
        train(ExperimentSpec(**spec), dataset_cache=tmp_path, callback=StopInTask2(), checkpoint_dir=ckpt)
    resumed = train(ExperimentSpec(**spec), dataset_cache=tmp_path, checkpoint_dir=ckpt)
    assert resumed["accuracy_matrix"] == whole["accuracy_matrix"]
    assert [e["loss"] for e in resumed["epochs"]] == [e["loss"] for e in whole["epochs"]]
    with np.load(ckpt / "task-1" / "state.npz") as saved:
        groups = {key.split("/")[0] for key in saved.files}
    assert set(methods) <= groups
    assert json.loads(json.dumps(resumed["spec"])) == whole["spec"]


def test_a_sweep_over_si_c_and_ewc_gamma_gives_valid_specs() -> None:
    from store.sweeps import expand_grid

    points = expand_grid({"dataset": "digits", "si": {}, "ewc": {}}, {"si.c": [0.1, 1], "ewc.gamma": [0.5, 1]})
    specs = [ExperimentSpec(**spec) for _, spec in points]
    assert [(s.si.c, s.ewc.gamma) for s in specs] == [(0.1, 0.5), (0.1, 1), (1, 0.5), (1, 1)]  # type: ignore[attr-defined]


def test_multi_head_defaults_are_ten_times_larger_and_explicit_values_stay() -> None:
    split = {"dataset": "mnist-5k", "dataset_update": "switch", "splits": 5, "epochs": 25}
    multi = ExperimentSpec(**split, heads="multi", ewc={}, si={})
    assert multi.ewc.lambda_ == 1000.0 and multi.ewc.gamma == 0.9  # type: ignore[attr-defined]
    assert multi.si.c == 30.0  # type: ignore[attr-defined]
    shared = ExperimentSpec(**split, ewc={}, si={})
    assert shared.ewc.lambda_ == 100.0 and shared.si.c == 3.0  # type: ignore[attr-defined]
    given = ExperimentSpec(**split, heads="multi", ewc={"lambda": 5}, si={"c": 0.5})
    assert given.ewc.lambda_ == 5.0 and given.ewc.gamma == 1.0 and given.si.c == 0.5  # type: ignore[attr-defined]
