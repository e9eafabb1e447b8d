"""`/v1/sweeps`: one experiment per point of a grid over a base spec, and their statistics.

`POST /v1/sweeps` {"base": <spec>, "grid": {"ewc.lambda": [1, 10, 100], "seed": [0, 1, 2]},
"name": ...} validates every point as an ExperimentSpec before creating anything.
`GET /v1/sweeps/{id}` gives, per grid point (the non-seed keys), mean ± std over seeds of
average accuracy, BWT and forgetting (fractions), counts by status and the best point.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator

from api import parsing
from api.deps import MAX_ID, CeleryDep, CurrentUser, SessionDep, SettingsDep, SweepId
from api.openapi import binary
from api.schemas import ErrorMessage, ProblemList, SweepCreated, SweepList, SweepOut
from api.services import sweeps as sweep_service
from api.submission import create_sweep, wake
from common.schemas import StoredSpec
from store import sweeps as store_sweeps
from store.vocabulary import SWEEP_METRICS

router = APIRouter(
    prefix="/v1/sweeps",
    tags=["sweeps"],
    responses={401: {"model": ErrorMessage, "description": "Missing, unknown or revoked token"}},
)
_NOT_FOUND = {404: {"model": ErrorMessage, "description": "No sweep with this id"}}
_METRIC_PATTERN = f"^({'|'.join(SWEEP_METRICS)})$"
GRID_SCHEMA = {
    "type": "object", "additionalProperties": {"type": "array", "items": {}},
    "description": 'Dotted spec paths → lists of values, e.g. {"ewc.lambda": [1, 10, 100], '
    '"seed": [0, 1, 2]}; one experiment per combination.',
}  # fmt: skip


class SweepIn(BaseModel):
    """A sweep request: the base spec and, per dotted spec path, the values to try."""

    model_config = ConfigDict(extra="forbid")

    base: StoredSpec = Field(default_factory=dict, description="The spec every point starts from.")
    # Checked point by point (`api.submission.create_sweep`), so a bad value is named by path.
    grid: Annotated[dict[str, Any], WithJsonSchema(GRID_SCHEMA)] = Field(
        description='Dotted spec paths → lists of values, e.g. {"ewc.lambda": [1, 10, 100], '
        '"seed": [0, 1, 2]}; one experiment per combination.'
    )
    name: Annotated[str, Field(max_length=200)] | None = None

    @field_validator("base", "grid")
    @classmethod
    def _bounded(cls, value: dict[str, Any]) -> dict[str, Any]:
        problem = parsing.json_text_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("name")
    @classmethod
    def _storable(cls, value: str | None) -> str | None:
        problem = parsing.text_problem(value) if value is not None else None
        if problem:
            raise ValueError(problem)
        return value


@router.post(
    "",
    operation_id="submit_sweep",
    status_code=status.HTTP_201_CREATED,
    responses={
        422: {"model": ProblemList, "description": "A bad grid or grid point, named by path"},
        429: {"model": ErrorMessage, "description": "The points would exceed the user's cap"},
    },
)
def submit_sweep(
    body: SweepIn, user: CurrentUser, session: SessionDep, settings: SettingsDep, celery: CeleryDep
) -> SweepCreated:
    """Create one queued experiment per grid point (dotted paths into the spec), linked by
    the sweep; a bad point → 422 naming the path and value, and nothing is created."""
    sweep, created = create_sweep(
        session, settings, user, base=body.base, grid=body.grid, name=body.name
    )
    wake(session, celery, created)  # commits the rows, then wakes the workers
    return SweepCreated(
        id=sweep.id, name=sweep.name, grid=sweep.grid, experiment_ids=[e.id for e in created]
    )


@router.get(
    "",
    operation_id="list_sweeps",
    responses={422: {"model": ProblemList, "description": "Bad cursor"}},
)
def list_sweeps(
    user: CurrentUser,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page")] = None,
    before: Annotated[
        int | None,
        Query(ge=1, le=MAX_ID, deprecated=True,
              description="Deprecated: the old `next_before`; pass `cursor` instead."),
    ] = None,
) -> SweepList:
    """Sweeps, newest first, with their runs' counts by status; paginated by cursor, as
    experiments are."""
    before_id = sweep_service.cursor_id(cursor, before)
    rows = store_sweeps.list_sweeps(session, limit=limit + 1, before_id=before_id)
    items = [sweep_service.summary(session, s, counts) for s, counts in rows[:limit]]
    last = items[-1].id if len(rows) > limit else None
    return SweepList(
        items=items,
        next_cursor=sweep_service.next_cursor(last),
        next_before=last,
    )


@router.get("/{sweep_id}", operation_id="get_sweep", responses=_NOT_FOUND)
def get_sweep(sweep_id: SweepId, user: CurrentUser, session: SessionDep) -> SweepOut:
    """Per grid point: mean ± std over seeds of average accuracy, BWT and forgetting, counts
    by status, and the best point (highest mean average accuracy)."""
    return sweep_service.sweep_document(session, store_sweeps.get_sweep(session, sweep_id))


@router.get(
    "/{sweep_id}/plot.png",
    operation_id="sweep_plot",
    response_class=Response,
    responses={200: binary("image/png", description="A PNG image"), **_NOT_FOUND,
               409: {"model": ErrorMessage, "description": "No run has finished yet"}},
)  # fmt: skip
def sweep_plot(
    sweep_id: SweepId,
    user: CurrentUser,
    session: SessionDep,
    metric: Annotated[str, Query(pattern=_METRIC_PATTERN)] = "average_accuracy",
    x: Annotated[str | None, Query(description="Grid path on the x axis")] = None,
) -> Response:
    """The metric against the swept value, mean ± std over seeds (PNG, 720 × 450 px)."""
    return Response(sweep_service.sweep_png(session, sweep_id, metric, x), media_type="image/png")
