"""The README documents every setting and every command (a newcomer's only map)."""

from pathlib import Path

from typer.main import get_command

from cli.main import app
from common.settings import Settings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_every_setting_is_in_the_readme() -> None:
    missing = [f"EWC_{name.upper()}" for name in Settings.model_fields if f"`EWC_{name.upper()}`" not in README]
    assert not missing, f"settings not documented in README.md: {missing}"


def test_every_command_is_in_the_readme() -> None:
    commands = get_command(app).commands  # type: ignore[attr-defined]
    missing = [name for name in commands if f"ewc {name}" not in README]
    assert not missing, f"commands not documented in README.md: {missing}"
