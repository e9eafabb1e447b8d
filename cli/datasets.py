"""`ewc datasets`: upload, list and delete datasets of your own (`user:<name>` in a spec)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
