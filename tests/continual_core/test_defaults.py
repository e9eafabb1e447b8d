"""The defaults the README states, pinned as literal numbers (not read back from the
constants the code uses, so changing a default in the code fails here until the README —
and this test — are changed with it). Both doors are checked: the JSON spec (API, worker)
and the original flags (`ewc run`, `ewc submit`, `ewc sweep` share them)."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from cli import flags as F
from continual_core.spec import ExperimentSpec

#: README "flag | default" table and "Estimators and λ scale".
EWC_LAMBDA = {"empirical": 100.0, "sampled": 100.0, "seed": 0.1}
FIM_THRESHOLD = {"empirical": 3e-4, "sampled": 1e-3, "seed": 0.3}
#: Given no λ, EWC is online EWC (γ = 0.9); given no threshold, FIM's grows as k^1.
EWC_GAMMA, FIM_GROWTH = 0.9, 1.0
PLAIN = {"batch_size": 256, "epochs": 20, "learning_rate": 0.001, "model": "mlp",
         "dataset": "mnist", "dataset_update": "full", "splits": 1, "fisher": "empirical",
         "seed": 0, "reset_optimizer": False, "augment": False,
         "ewc": None, "fim": None, "incdet": None}  # fmt: skip


def _flags_spec(*args: str) -> ExperimentSpec:
    """The spec a command taking the original flags builds from `args`."""
    seen: list[ExperimentSpec] = []

    @F.with_spec_flags
    def command(flags: F.SpecFlags) -> None:
        seen.append(flags.to_spec())

    app = typer.Typer()
    app.command()(command)
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return seen[0]


@pytest.mark.parametrize("door", ["json", "flags"])
def test_plain_defaults(door: str) -> None:
    spec = ExperimentSpec() if door == "json" else _flags_spec()
    body = spec.to_json_dict()
    assert {k: body[k] for k in PLAIN} == PLAIN
    # `full` forces one task; with a task stream the default is 5 splits
    other = (
        ExperimentSpec(dataset_update="permute")
        if door == "json"
        else _flags_spec("--dataset-update", "permute")
    )
    assert other.splits == 5 and other.model == "mlp"
    assert ExperimentSpec(model="cifarnet").dataset == "cifar10"
    assert ExperimentSpec(model="lenet").dataset == "mnist"


@pytest.mark.parametrize("fisher", ["empirical", "sampled", "seed"])
@pytest.mark.parametrize("door", ["json", "flags"])
def test_method_defaults_per_estimator(door: str, fisher: str) -> None:
    if door == "json":
        spec = ExperimentSpec(fisher=fisher, ewc={}, fim={}, incdet={})
    else:
        spec = _flags_spec("--fisher", fisher, "--ewc", "--fim", "--incdet")
    body = spec.to_json_dict()
    assert body["fisher"] == fisher
    assert body["ewc"] == {"lambda": EWC_LAMBDA[fisher], "samples": 100, "gamma": EWC_GAMMA,
                           "normalize": False}  # fmt: skip
    assert body["fim"] == {"threshold": FIM_THRESHOLD[fisher], "samples": 100, "growth": FIM_GROWTH}
    assert body["incdet"] == {"threshold": 1e-6}
    assert spec.ewc_lambda == EWC_LAMBDA[fisher]


def test_an_explicit_value_always_wins() -> None:
    spec = _flags_spec(
        "--fisher", "seed", "--ewc", "--ewc-lambda", "7", "--fim", "--fim-threshold", "0.01"
    )
    assert spec.ewc is not None and spec.ewc.lambda_ == 7.0 and spec.ewc.gamma == 1.0
    assert spec.fim is not None and spec.fim.threshold == 0.01 and spec.fim.growth == 0.0
    spec = ExperimentSpec(ewc={"lambda": 0}, fim={"threshold": 1e-6})
    assert spec.ewc_lambda == 0.0 and spec.fim is not None and spec.fim.threshold == 1e-6
