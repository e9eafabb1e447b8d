"""Bodies of managing runs after the fact (`api.routes.manage`, `client.manage`): re-run,
edit, purge, cancel a sweep. Pure pydantic, like `common.schemas`.

Names, tags and projects are checked as a submission checks them (`ExperimentSpec`: no NUL
byte, no lone surrogate; a name at most 200 characters, at most 32 tags of 1 to 64).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from continual_core.spec import StorableText

#: Most characters of an experiment's notes.
MAX_NOTES = 10_000

ProjectName = Annotated[StorableText, Field(min_length=1, max_length=100)]
Name = Annotated[StorableText, Field(max_length=200)]
Tags = Annotated[
    list[Annotated[StorableText, Field(min_length=1, max_length=64)]], Field(max_length=32)
]
Notes = Annotated[StorableText, Field(max_length=MAX_NOTES)]


class RerunIn(BaseModel):
    """A re-run: the stored spec with `overrides` applied (dotted spec paths → values),
    checked as a whole new submission. Name: the original's + " (re-run)" unless
    `overrides` sets `name`; tags and project: the original's unless given."""

    model_config = ConfigDict(extra="forbid")

    overrides: dict[str, Any] = Field(
        default_factory=dict,
        description='Dotted spec paths → values, e.g. {"ewc.lambda": 10, "seed": 1}.',
        examples=[{"ewc.lambda": 10, "seed": 1}],
    )
    project: ProjectName | None = Field(default=None, description="Default: the original's.")


class ExperimentEdit(BaseModel):
    """What `PATCH /v1/experiments/{id}` may change; a field left out stays as it is, and
    `name` or `notes` null clears it. `tags` replaces the whole list."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    tags: Tags | None = Field(default=None, description="The new tags (the whole list).")
    notes: Notes | None = Field(default=None, description="Free text (Markdown is not rendered).")
    project: ProjectName | None = Field(default=None, description="Move it to this project.")


class Purged(BaseModel):
    """A purged experiment: its row, metrics, tags and logs are gone, and its artifacts."""

    id: int
    artifacts_deleted: int = Field(description="Objects removed from the artifact store.")


class SweepCancelled(BaseModel):
    """What `POST /v1/sweeps/{id}/cancel` did to the sweep's points."""

    sweep_id: int
    cancelled: list[int] = Field(description="Queued points, cancelled at once.")
    stopping: list[int] = Field(description="Running points, asked to stop at their next check.")
    finished: int = Field(description="Points that had ended already (left as they were).")
