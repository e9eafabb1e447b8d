"""`--heads`, `--hidden` and `--joint` on the command line: a task-IL run trains, the result
names its scenario, and bad values are refused naming the flag."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from cli.main import app


@pytest.mark.parametrize("name", ["run", "submit", "sweep"])
def test_scenario_flags_are_options(name: str) -> None:
    command = get_command(app).commands[name]  # type: ignore[attr-defined]
    assert {"--heads", "--hidden", "--joint"} <= {opt for p in command.params for opt in p.opts}


@pytest.mark.parametrize(
    ("args", "flag", "message"),
    [
        (["--heads", "many"], "--heads", "choose one of 'shared' or 'multi'"),
        (["--hidden", "400,x"], "--hidden", "such as 400,400"),
        (["--model", "lenet", "--hidden", "10"], "--hidden", "only mlp takes hidden widths"),
        (["--joint", "--dataset-update", "switch", "--ewc"], "--joint", "takes no method"),
    ],
)
def test_bad_scenario_flags_are_refused_naming_the_flag(args: list[str], flag: str, message: str) -> None:
    result = CliRunner().invoke(app, ["run", *args], env={"COLUMNS": "200"})
    assert result.exit_code == 2, result.output
    assert flag in result.output and message in " ".join(result.output.split()), result.output


def test_ewc_run_task_il(tmp_path: Path) -> None:
    args = ["run", "--dataset", "digits", "--dataset-update", "switch", "--splits", "2",
            "--epochs", "2", "--batch-size", "64", "--heads", "multi", "--hidden", "32,16",
            "--data-dir", str(tmp_path), "--json"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout.strip().splitlines()[-1])
    assert body["scenario"] == "task-IL" and body["spec"]["hidden"] == [32, 16]
    assert len(body["accuracy_matrix"]) == 2
