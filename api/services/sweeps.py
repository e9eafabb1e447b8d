"""A sweep's statistics document and its plot, for the v1 routes and the dashboard.

Per grid point (the non-seed keys): mean ± std over seeds of average accuracy, BWT and
forgetting (fractions), counts by status, and the best point: named only when it beats
the runner-up by more than the noise (`store.sweep_best`), `best_reason` saying why or why not.
"""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException, status
from sqlalchemy.orm import Session

from api import plots
from api.schemas import SweepOut, SweepPoint, SweepSummary
from store import sweeps as store_sweeps
from store import users
from store.errors import InvalidInput
from store.experiments import decode_cursor, encode_cursor
from store.models import Experiment, Sweep
from store.vocabulary import REPLICATE_KEYS


def summary(session: Session, sweep: Sweep, counts: dict[str, int]) -> SweepSummary:
    """A sweep in a listing, with its runs' counts by status."""
    return SweepSummary(
        id=sweep.id, name=sweep.name, owner=users.user_name(session, sweep.owner_id),
        grid=sweep.grid, counts=counts, created_at=sweep.created_at,
    )  # fmt: skip


class CursorAndBefore(InvalidInput):
    """Both `cursor` and its deprecated alias `before` were given."""

    field = "before"


def cursor_id(cursor: str | None, before: int | None) -> int | None:
    """The sweep id a listing continues before: from `cursor` (the one style every listing
    pages by), or from `before` (its deprecated alias, the old `next_before`)."""
    if cursor and before is not None:
        raise CursorAndBefore("pass `cursor` (the `next_cursor` of the previous page) only; "
                              "`before` is its deprecated alias")
    return decode_cursor(cursor) if cursor else before


def next_cursor(last_id: int | None) -> str | None:
    """The `next_cursor` of a page whose last sweep is `last_id` (None: no more pages)."""
    return None if last_id is None else encode_cursor(last_id)


def sweep_document(session: Session, sweep: Sweep) -> SweepOut:
    """The full statistics document of a stored sweep."""
    exps: list[Experiment] = store_sweeps.sweep_experiments(session, sweep.id)
    points = store_sweeps.point_statistics(sweep.grid, exps)
    chosen = store_sweeps.best_point(points)
    best = None if chosen["index"] is None else points[chosen["index"]]["params"]
    return SweepOut(
        id=sweep.id,
        name=sweep.name,
        owner=users.user_name(session, sweep.owner_id),
        grid=sweep.grid,
        counts=store_sweeps.status_counts(exps),
        created_at=sweep.created_at,
        base_spec=sweep.base_spec,
        points=[SweepPoint.model_validate(p) for p in points],
        best=best,
        best_reason=chosen["reason"],
        best_test=chosen["test"],
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


def swept_key(grid: dict[str, Any]) -> str:
    """The key a sweep's plot puts on the x axis: the first non-seed key with several values."""
    keys = [k for k in grid if k not in REPLICATE_KEYS]
    return next((k for k in keys if len(grid[k]) > 1), keys[0] if keys else "")


def sweep_png(session: Session, sweep_id: int, metric: str, x: str | None) -> bytes:
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
