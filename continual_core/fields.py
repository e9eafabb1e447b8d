"""The pydantic building blocks every config model shares (the spec, each method's
config): strict models and the number types. TF-free, imports nothing of the core."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

PositiveInt = Annotated[int, Field(gt=0)]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


def _widths(value: Any) -> Any:
    """"400,400" (a flag, a form field) or "400x400" (a sweep grid line, whose values are
    comma-separated) → [400, 400]; lists pass through unchanged."""
    if not isinstance(value, str):
        return value
    parts = re.split(r"\s*[,x]\s*", value.strip())
    if not all(p.isdigit() for p in parts):
        raise ValueError(f"{value!r} is not a list of widths; give whole numbers such as 400,400")
    return [int(p) for p in parts]


#: Hidden layer widths: 1 to 8 layers of 1 to 2048 units, as a list, "400,400" or "400x400".
HiddenWidths = Annotated[
    list[Annotated[int, Field(ge=1, le=2048)]], Field(min_length=1, max_length=8),
    BeforeValidator(_widths),
]  # fmt: skip


class Strict(BaseModel):
    """A config model that refuses unknown keys; aliased fields also take their name."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
