"""Uploaded datasets: `upload_dataset`, `datasets`, `dataset`, `delete_dataset`.

Mixed into `client.http.Client`: methods here call `self.send`, `self.request` and
`self._model` as the rest of the client does.

    client.upload_dataset("mine.npz", name="mine")   # then {"dataset": "user:mine", ...}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from common.schemas_datasets import DatasetList, DatasetOut

#: An upload may take long on a slow link: seconds allowed for its request.
UPLOAD_TIMEOUT_S = 600.0


class DatasetsMixin:
    """The client's datasets calls."""

    def upload_dataset(
        self, path: str | Path, name: str, description: str | None = None
    ) -> DatasetOut:
        """Upload a `.npz` (x_train, y_train, x_test, y_test, optionally class_names) as
        `name`; a spec then names it `"dataset": "user:<name>"`. The file is streamed."""
        fields: dict[str, Any] = {"name": name}
        if description:
            fields["description"] = description
        with open(path, "rb") as f:
            return self._model(  # type: ignore[attr-defined, no-any-return]
                DatasetOut, "POST", "/v1/datasets", data=fields,
                files={"file": (Path(path).name, f, "application/octet-stream")},
                timeout=UPLOAD_TIMEOUT_S,
            )  # fmt: skip

    def datasets(self) -> list[DatasetOut]:
        """Every uploaded dataset, by name (each usable by every user)."""
        return self._model(DatasetList, "GET", "/v1/datasets").items  # type: ignore[attr-defined, no-any-return]

    def dataset(self, name: str) -> DatasetOut:
        """One uploaded dataset."""
        return self._model(DatasetOut, "GET", f"/v1/datasets/{name}")  # type: ignore[attr-defined, no-any-return]

    def delete_dataset(self, name: str) -> None:
        """Delete a dataset of yours (or any, as an admin); refused while jobs use it."""
        self.send("DELETE", f"/v1/datasets/{name}")  # type: ignore[attr-defined]
