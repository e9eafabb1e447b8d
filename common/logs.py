"""Logging for every service process: one line per event on stderr,
`time level logger event=... experiment_id=...`."""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def configure_logging(level: str) -> None:
    """Send every logger's records at `level` and above to stderr, one line each."""
    logging.basicConfig(level=level.upper(), format=FORMAT, stream=sys.stderr, force=True)
