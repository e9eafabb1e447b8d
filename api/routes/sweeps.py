"""`/v1/sweeps`: one experiment per point of a grid over a base spec, and their statistics.

`POST /v1/sweeps` {"base": <spec>, "grid": {"ewc.lambda": [1, 10, 100], "seed": [0, 1, 2]},
"name": ...} validates every point as an ExperimentSpec before creating anything.
`GET /v1/sweeps/{id}` gives, per grid point (the non-seed keys), mean ± std over seeds of
average accuracy, BWT and forgetting (fractions), counts by status and the best point.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field, field_validator

from api import parsing, plots
from api.deps import MAX_ID, CeleryDep, CurrentUser, SessionDep, SettingsDep, SweepId
from api.schemas import ErrorMessage, ProblemList
from api.submission import create_sweep, wake
from store import sweeps as store_sweeps
from store.models import Experiment, Sweep, User

router = APIRouter(
    prefix="/v1/sweeps",
    tags=["sweeps"],
    responses={401: {"model": ErrorMessage, "description": "Missing, unknown or revoked token"}},
)
_NOT_FOUND = {404: {"model": ErrorMessage, "description": "No sweep with this id"}}


class SweepIn(BaseModel):
    """A sweep request: the base spec and, per dotted spec path, the values to try."""

    model_config = ConfigDict(extra="forbid")

    base: dict[str, Any] = Field(default_factory=dict, description="The spec every point starts from.")
    grid: dict[str, Any] = Field(
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


class SweepCreated(BaseModel):
    """The new sweep and its experiments (all queued)."""

    id: int
    name: str | None
    grid: dict[str, list[Any]]
    experiment_ids: list[int]


class MetricStats(BaseModel):
    """Mean and sample standard deviation over the succeeded runs of a point (fractions)."""

    mean: float | None
    std: float | None
    n: int


class SweepPoint(BaseModel):
    """One grid point (its non-seed values) and the statistics of its runs."""

    params: dict[str, Any]
    experiment_ids: list[int]
    counts: dict[str, int]
    metrics: dict[str, MetricStats]
    best: bool


class SweepSummary(BaseModel):
    """A sweep in a listing: its grid and how many of its runs are in each status."""

    id: int
    name: str | None
    owner: str
    grid: dict[str, list[Any]]
    counts: dict[str, int]
    created_at: datetime


class SweepOut(SweepSummary):
    """A sweep with per-point statistics; `best` repeats the best point's params."""

    base_spec: dict[str, Any]
    points: list[SweepPoint]
    best: dict[str, Any] | None
    experiments: list[dict[str, Any]]


class SweepList(BaseModel):
    """Sweeps newest first; pass `next_before` as `before` for the next page."""

    items: list[SweepSummary]
    next_before: int | None


def _owner_name(session, owner_id: int) -> str:
    user = session.get(User, owner_id)
    return user.name if user else str(owner_id)


def sweep_document(session, sweep: Sweep) -> SweepOut:
    """The full statistics document of a stored sweep."""
    exps: list[Experiment] = store_sweeps.sweep_experiments(session, sweep.id)
    points = store_sweeps.point_statistics(sweep.grid, exps)
    best = next((p["params"] for p in points if p["best"]), None)
    return SweepOut(
        id=sweep.id,
        name=sweep.name,
        owner=_owner_name(session, sweep.owner_id),
        grid=sweep.grid,
        counts=store_sweeps.status_counts(exps),
        created_at=sweep.created_at,
        base_spec=sweep.base_spec,
        points=[SweepPoint.model_validate(p) for p in points],
        best=best,
        experiments=[
            {
                "id": e.id,
                "name": e.name,
                "status": e.status.value,
                "params": {k: store_sweeps.get_path(e.spec, k) for k in sweep.grid},
                "summary": e.summary,
            }
            for e in exps
        ],
    )


@router.post(
    "",
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


@router.get("")
def list_sweeps(
    user: CurrentUser,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="`next_before` of the previous page")
    ] = None,
) -> SweepList:
    """Sweeps, newest first, with their runs' counts by status."""
    rows = store_sweeps.list_sweeps(session, limit=limit + 1, before_id=before)
    items = [
        SweepSummary(
            id=s.id, name=s.name, owner=_owner_name(session, s.owner_id), grid=s.grid,
            counts=counts, created_at=s.created_at,
        )
        for s, counts in rows[:limit]
    ]
    return SweepList(items=items, next_before=items[-1].id if len(rows) > limit else None)


@router.get("/{sweep_id}", responses=_NOT_FOUND)
def get_sweep(sweep_id: SweepId, user: CurrentUser, session: SessionDep) -> SweepOut:
    """Per grid point: mean ± std over seeds of average accuracy, BWT and forgetting, counts
    by status, and the best point (highest mean average accuracy)."""
    return sweep_document(session, store_sweeps.get_sweep(session, sweep_id))


def swept_key(grid: dict[str, Any]) -> str:
    """The key a sweep's plot puts on the x axis: the first non-seed key with several values."""
    keys = [k for k in grid if k not in store_sweeps.REPLICATE_KEYS]
    return next((k for k in keys if len(grid[k]) > 1), keys[0] if keys else "")


@router.get(
    "/{sweep_id}/plot.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, **_NOT_FOUND,
               409: {"model": ErrorMessage, "description": "No run has finished yet"}},
)  # fmt: skip
def sweep_plot(
    sweep_id: SweepId,
    user: CurrentUser,
    session: SessionDep,
    metric: Annotated[str, Query(pattern="^(average_accuracy|bwt|forgetting)$")] = "average_accuracy",
    x: Annotated[str | None, Query(description="Grid path on the x axis")] = None,
) -> Response:
    """The metric against the swept value, mean ± std over seeds (PNG, 720 × 450 px)."""
    return Response(sweep_png(session, sweep_id, metric, x), media_type="image/png")


def sweep_png(session, sweep_id: int, metric: str, x: str | None) -> bytes:
    """The sweep plot's PNG; `NothingToPlot` → 409, an unknown `x` → 422."""
    sweep = store_sweeps.get_sweep(session, sweep_id)
    x_key = x or swept_key(sweep.grid)
    if x and x not in sweep.grid:
        raise store_sweeps.GridError(x, f"is not a key of this sweep's grid {list(sweep.grid)}")
    points = store_sweeps.point_statistics(sweep.grid, store_sweeps.sweep_experiments(session, sweep_id))
    try:
        return plots.sweep_png(points, x_key, metric)
    except plots.NothingToPlot as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, f"sweep {sweep_id}: {exc}") from None
