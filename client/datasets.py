"""Uploaded datasets: `upload_dataset`, `datasets`, `dataset`, `delete_dataset`.

Mixed into `client.http.Client`: methods here call `self.send`, `self.request` and
`self._model` as the rest of the client does.
"""

from __future__ import annotations


class DatasetsMixin:
    """The client's datasets calls."""
