"""`ewc webhooks`: add, list and remove your webhooks; see their deliveries."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
