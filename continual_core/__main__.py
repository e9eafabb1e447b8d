"""`python -m continual_core <flags>`: the same command as `ewc run`, standalone."""

from __future__ import annotations

import typer

from continual_core.cli import run


def main() -> None:
    """Run the `run` command as a one-command Typer app."""
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command(help="Train here, with the original project's flags.")(run)
    app()


if __name__ == "__main__":
    main()
