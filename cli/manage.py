"""`ewc rerun`, `ewc edit`, `ewc archive`, `ewc restore`: managing runs after the fact."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
