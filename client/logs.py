"""A job's log lines: `logs`, `follow_logs`.

Mixed into `client.http.Client`: methods here call `self.send`, `self.request` and
`self._model` as the rest of the client does.
"""

from __future__ import annotations


class LogsMixin:
    """The client's logs calls."""
