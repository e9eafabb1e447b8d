"""Methods are plug-ins: a method registered from the test itself (`toy_method.Toy`) is
accepted by the spec under its own key, gets its flags, fires every hook of the loop, is
checkpointed, and trains end to end through `train()` and `ewc run` — without a change to
the core. The registry's spec side stays TF-free."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from pydantic import ValidationError
from typer.testing import CliRunner

from cli.main import app
from continual_core.datasets import load_dataset
from continual_core.learner import Learner
from continual_core.methods import METHODS, RESERVED, registered
from continual_core.spec import ExperimentSpec, validation_problems
from continual_core.tasks import make_tasks
from continual_core.trainer import train
from tests.continual_core.toy_method import Toy

BASE = {"dataset": "digits", "dataset_update": "permute", "splits": 3, "epochs": 3,
        "batch_size": 64, "seed": 5}  # fmt: skip


@pytest.fixture
def toy():
    with registered(Toy):
        yield Toy


def _problems(data: dict) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as err:
        ExperimentSpec.model_validate(data)
    return validation_problems(err.value)


def test_importing_every_method_imports_no_tensorflow() -> None:
    code = (
        "import sys, importlib\n"
        "import continual_core.spec, continual_core.methods as m, continual_core.models\n"
        "for method in m.METHODS.values(): importlib.import_module(method.__module__)\n"
        "assert continual_core.spec.ExperimentSpec(ewc={}, fim={}, incdet={}).methods\n"
        "heavy = [n for n in ('tensorflow', 'keras') if n in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_method_keys_cannot_shadow_spec_fields() -> None:
    assert set(ExperimentSpec.model_fields) == RESERVED
    assert list(METHODS)[:3] == ["ewc", "fim", "incdet"]  # the order their hooks fire (then the newer methods)


def test_a_registered_method_is_a_spec_key_validated_by_its_config(toy) -> None:
    spec = ExperimentSpec(**BASE, toy={"decay": 0.5})
    assert spec.toy is not None and spec.toy.decay == 0.5 and spec.ewc is None
    assert list(spec.methods) == ["toy"]
    body = spec.to_json_dict()
    assert body["toy"] == {"decay": 0.5, "scale": 1.0} and body["ewc"] is None
    assert ExperimentSpec.model_validate(body) == spec
    assert ("toy.decay", "Input should be greater than or equal to 0") in _problems(
        {"toy": {"decay": -1}}
    )
    assert _problems({"toy": {"decai": 1}}) == [("toy.decai", "unknown field")]
    schema = ExperimentSpec.model_json_schema()
    assert "toy" in schema["properties"] and schema["additionalProperties"] is False


def test_an_unregistered_key_is_refused() -> None:
    assert _problems({"toy": {}}) == [("toy", "unknown field")]
    assert "toy" not in ExperimentSpec.model_json_schema()["properties"]


def test_every_hook_fires_and_the_step_is_traced_once(toy, tmp_path: Path) -> None:
    spec = ExperimentSpec(**{**BASE, "dataset_update": "increment"}, toy={}, ewc={}, fim={})
    tasks = make_tasks(spec, load_dataset(spec, tmp_path))
    learner = Learner(spec)
    method = learner.methods["toy"]
    assert list(learner.methods) == ["ewc", "fim", "toy"]  # registry order
    examples = steps = 0
    for task in tasks:
        learner.start_task(task.index)
        order = np.random.default_rng(task.index).permutation(len(task.train_y))
        learner.train_epoch(tf.constant(task.train_x), tf.constant(task.train_y), order, lambda: False)
        examples, steps = examples + len(order), steps + -(-len(order) // spec.batch_size)
        learner.consolidate(task.train_x, task.train_y, task.index)
    assert learner.trace_count == 1
    assert (int(method.seen), int(method.steps), int(method.ended)) == (examples, steps, 3)
    assert method.started == [1, 2, 3]
    assert learner.state()["toy"] == [method.seen, method.steps, method.ended]


def test_toy_trains_end_to_end_and_is_checkpointed(toy, tmp_path: Path) -> None:
    plain = train(ExperimentSpec(**BASE), dataset_cache=tmp_path)
    inert = train(ExperimentSpec(**BASE, toy={}), dataset_cache=tmp_path,
                  checkpoint_dir=tmp_path / "ckpt")  # fmt: skip
    # a method that changes nothing changes nothing, bit for bit
    assert inert["accuracy_matrix"] == plain["accuracy_matrix"]
    assert [e["loss"] for e in inert["epochs"]] == [e["loss"] for e in plain["epochs"]]
    assert len(inert["timings"]["fisher_s"]) == 2 and plain["timings"]["fisher_s"] == []
    assert inert["spec"]["toy"] == {"decay": 0.0, "scale": 1.0}
    with np.load(tmp_path / "ckpt" / "task-3" / "state.npz") as saved:
        seen, steps, ended = (int(saved[f"toy/{i:04d}"]) for i in range(3))
    assert ended == 2 and steps > 0 and seen > steps
    pulled = train(ExperimentSpec(**BASE, toy={"decay": 0.01}), dataset_cache=tmp_path)
    assert pulled["accuracy_matrix"] != plain["accuracy_matrix"]


def test_ewc_run_has_the_toy_flags_and_trains_it(toy, tmp_path: Path) -> None:
    runner = CliRunner()
    helptext = runner.invoke(app, ["run", "--help"], env={"COLUMNS": "200"}).output
    assert "--toy-decay" in helptext and "Strength of the L2 pull." in helptext
    args = ["run", "--dataset", "digits", "--dataset-update", "permute", "--splits", "2",
            "--epochs", "2", "--batch-size", "128", "--data-dir", str(tmp_path), "--json"]  # fmt: skip
    result = runner.invoke(app, [*args, "--toy", "--toy-decay", "0.001"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout.strip().splitlines()[-1])
    assert body["spec"]["toy"] == {"decay": 0.001, "scale": 1.0}
    assert len(body["accuracy_matrix"]) == 2
    bad = runner.invoke(app, [*args, "--toy", "--toy-scale", "0"], env={"COLUMNS": "200"})
    assert bad.exit_code == 2 and "--toy-scale" in bad.output


def test_register_refuses_a_taken_or_reserved_name() -> None:
    from continual_core.methods import register
    from continual_core.methods.ewc import EWC

    class Seed(Toy):
        name = "seed"

    class Other(Toy):
        name = "ewc"

    for method in (Seed, Other):
        with pytest.raises(ValueError):
            register(method)
    assert METHODS["ewc"] is EWC and "seed" not in METHODS
