"""Managing runs: `rerun`, `edit`, `archive`, `restore`, `purge`, `cancel_sweep`.

Mixed into `client.http.Client`: methods here call `self.send`, `self.request` and
`self._model` as the rest of the client does.
"""

from __future__ import annotations


class ManageMixin:
    """The client's manage calls."""
