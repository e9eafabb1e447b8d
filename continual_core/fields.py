"""The pydantic building blocks every config model shares (the spec, each method's
config): strict models and the number types. TF-free, imports nothing of the core."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

PositiveInt = Annotated[int, Field(gt=0)]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


class Strict(BaseModel):
    """A config model that refuses unknown keys; aliased fields also take their name."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
