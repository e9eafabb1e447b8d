"""`ewc logs ID [-f]`: a job's captured log lines, followed while it runs."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
