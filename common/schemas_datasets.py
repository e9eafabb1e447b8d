"""The `/v1/datasets` bodies (pydantic), shared by the API and the Python client.

An uploaded dataset as the API shows it: its name (a spec uses it as `user:<name>`), who
uploaded it, the file's sha256 and size, one example's shape, the class count and names,
and how many examples each split holds. Datetimes are ISO 8601 in UTC.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class DatasetOut(BaseModel):
    """One uploaded dataset."""

    name: str
    use_as: str = Field(description='What a spec\'s "dataset" names it: user:<name>')
    owner: str = Field(description="The user who uploaded it (only they or an admin may delete it)")
    checksum: str = Field(description="sha256 of the .npz file, hex")
    size_bytes: int
    input_shape: list[int] = Field(description="One example's shape in the file, e.g. [28, 28]")
    num_classes: int
    class_names: list[str] | None = None
    train_examples: int
    test_examples: int
    description: str | None = None
    created_at: datetime


class DatasetList(BaseModel):
    """Every uploaded dataset, by name (each is usable by every user)."""

    items: list[DatasetOut]
