"""The original flags are declared once and every command that takes them gets all of them."""

from __future__ import annotations

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from cli.main import app

ORIGINAL_FLAGS = [
    "--batch-size", "--epochs", "--learning-rate", "--model", "--dataset", "--dataset-update",
    "--splits", "--ewc", "--ewc-lambda", "--ewc-samples", "--fim", "--fim-threshold",
    "--fim-samples", "--incdet", "--incdet-threshold",
]
NEW_FLAGS = ["--seed", "--fisher", "--reset-optimizer", "--augment"]


@pytest.mark.parametrize("name", ["run", "submit", "sweep"])
def test_every_original_flag_is_an_option(name: str) -> None:
    command = get_command(app).commands[name]  # type: ignore[attr-defined]
    options = {opt for p in command.params for opt in p.opts}
    assert set(ORIGINAL_FLAGS + NEW_FLAGS) <= options


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--model", "resnet"], "--model"),
        (["--dataset-update", "increment", "--splits", "11"], "--splits"),
        (["--epochs", "2", "--splits", "3", "--dataset-update", "permute"], "--epochs"),
        (["--ewc", "--ewc-lambda", "-1"], "--ewc-lambda"),
        (["--batch-size", "0"], "--batch-size"),
        (["--learning-rate", "nan"], "--learning-rate"),
    ],
)
@pytest.mark.parametrize("command", ["run", "submit"])
def test_bad_flags_are_refused_naming_the_flag(command: str, args: list[str], flag: str) -> None:
    result = CliRunner().invoke(app, [command, *args], env={"EWC_TOKEN": "x", "COLUMNS": "200"})
    assert result.exit_code == 2, result.output
    assert flag in result.output
