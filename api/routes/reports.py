"""`/v1/experiments/...`: plots, comparison and export of stored metrics, and the table of
many runs.

Registered before the experiments router (`api.routes.ROUTERS`), so
`/v1/experiments/compare` and `/v1/experiments/table` are not read as experiment ids.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from api import plots
from api.deps import CurrentUser, ExperimentId, SessionDep
from api.openapi import binary, text_body
from api.schemas import Comparison, ErrorMessage, ExperimentExport, ProblemList
from api.services import reports, runs
from api.vocabulary import COMPARE_PLOT_KINDS
from common.schemas import TableRow
from store import experiments
from store.models import JobStatus

router = APIRouter(
    prefix="/v1/experiments",
    tags=["reports"],
    responses={401: {"model": ErrorMessage, "description": "Missing, unknown or revoked token"}},
)

_NOT_FOUND = {404: {"model": ErrorMessage, "description": "No experiment with this id"}}
_PNG = binary("image/png", description="A PNG image")


_CSV = text_body("text/csv", "A CSV file (UTF-8)")["content"]
_NEXT = {
    "X-Next-Cursor": {
        "description": "Pass as `cursor` (same filter and order) for the next page; absent "
        "on the last page.",
        "schema": {"type": "string"},
    }
}


@router.get(
    "/table",
    operation_id="experiments_table",
    response_model=list[TableRow],
    responses={
        200: {"description": "Flat rows: JSON (a list) or CSV (`format=csv`)", "content": _CSV,
              "headers": _NEXT},
        422: {"model": ProblemList, "description": "Bad filter, order_by, cursor or format"},
    },
)  # fmt: skip
def experiments_table(
    user: CurrentUser,
    session: SessionDep,
    filter: runs.FilterQuery = None,
    order_by: runs.OrderQuery = None,
    status: JobStatus | None = None,
    tag: str | None = None,
    owner: Annotated[str | None, Query(description="User name")] = None,
    limit: Annotated[int, Query(ge=1, le=runs.MAX_TABLE_ROWS)] = runs.MAX_TABLE_ROWS,
    cursor: Annotated[str | None, Query(description="`X-Next-Cursor` of the previous page")] = None,
    format: Annotated[Literal["json", "csv"], Query(description="json or csv")] = "json",
    project: runs.ProjectQuery = None,
    archived: runs.ArchivedQuery = False,
) -> Response:
    """Many runs as one table, for notebooks: a row per run with `id`, `name`, `owner`,
    `status`, `sweep_id`, `tags`, the times, `params.<dotted spec path>` and
    `metrics.<summary key>`. The same `filter` and `order_by` as the list (docs/filters.md);
    paged by cursor like it, the next page's cursor in the `X-Next-Cursor` header."""
    page = runs.search(
        session, filter=filter, order_by=order_by, status=status, tag=tag, owner=owner,
        limit=limit, cursor=cursor, project=project, archived=archived,
    )  # fmt: skip
    rows = runs.table_rows(page.items)
    headers = {"X-Next-Cursor": page.next_cursor} if page.next_cursor else {}
    if format == "csv":
        return Response(runs.table_csv(rows), media_type="text/csv; charset=utf-8",
                        headers={**headers, "Content-Disposition": 'inline; filename="experiments.csv"'})  # fmt: skip
    return JSONResponse(jsonable_encoder(rows), headers=headers)


@router.get(
    "/compare",
    operation_id="compare_experiments",
    responses={
        404: {"model": ErrorMessage, "description": "Lists every unknown id"},
        422: {"model": ProblemList, "description": "ids is not a list of experiment ids"},
    },
)
def compare_experiments(
    user: CurrentUser,
    session: SessionDep,
    ids: Annotated[str | None, Query(description="Experiment ids, comma-separated: 1,2,3")] = None,
) -> Comparison:
    """Several experiments side by side: a summary per experiment and the spec fields that
    differ (`spec_differences`: {field: {id: value}}) or agree (`common_spec`)."""
    found = reports.load_experiments(session, reports.parse_ids(ids))
    return Comparison.model_validate(reports.comparison(found))


@router.get(
    "/compare/plot.png",
    operation_id="compare_plot",
    response_class=Response,
    responses={
        200: _PNG,
        404: {"model": ErrorMessage, "description": "Lists every unknown id"},
        409: {"model": ErrorMessage, "description": "Nothing to plot yet"},
        422: {"model": ProblemList, "description": "ids is not a list of experiment ids, "
              f"holds more than {reports.MAX_COMPARE_PLOT}, or the runs cannot be drawn "
              "together (diff: exactly two, of one task count)"},
    },
)  # fmt: skip
def compare_plot(
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    ids: Annotated[str | None, Query(description="Experiment ids, comma-separated: 1,2,3 "
                                     f"(legend order; at most {reports.MAX_COMPARE_PLOT})")] = None,
    kind: Annotated[Literal[COMPARE_PLOT_KINDS],  # type: ignore[valid-type]
                    Query(description="What to overlay")] = "accuracy",
) -> Response:
    """Several runs in one picture (PNG): `accuracy` (every task's validation accuracy per
    epoch; colour = run, line style = task), `average` (the mean over the tasks seen so far
    per epoch, and after each task on the test sets), `loss` (training loss per epoch), or
    `diff` (exactly two ids: the test accuracy matrix of the second minus the first's, in
    percentage points). Each run is labelled "#id name (λ=..)"; 409 while none has data."""
    try:
        png = reports.compare_plot(session, reports.plot_cache(request.app.state), ids, kind)
    except plots.NothingToPlot as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, f"{exc}; try again later") from None
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-cache"})


def _plot(request: Request, session, experiment_id: int, kind: str) -> Response:
    experiment = experiments.get_experiment(session, experiment_id)
    try:
        png = reports.experiment_plot(
            session, reports.plot_cache(request.app.state), experiment, kind
        )
    except plots.NothingToPlot as exc:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"experiment {experiment_id} ({experiment.status.value}): {exc}; try again later",
        ) from None
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-cache"})


_PLOT_RESPONSES = {
    200: _PNG,
    **_NOT_FOUND,
    409: {"model": ErrorMessage, "description": "Nothing to plot yet"},
}


@router.get(
    "/{experiment_id}/plots/accuracy-matrix.png",
    operation_id="accuracy_matrix_plot",
    response_class=Response,
    responses=_PLOT_RESPONSES,
)
def accuracy_matrix_plot(
    experiment_id: ExperimentId, request: Request, user: CurrentUser, session: SessionDep
) -> Response:
    """The test accuracy matrix as an annotated heatmap (PNG, 640 × 520 px); 409 before the
    first task has finished."""
    return _plot(request, session, experiment_id, "accuracy-matrix")


@router.get(
    "/{experiment_id}/plots/curves.png",
    operation_id="curves_plot",
    response_class=Response,
    responses=_PLOT_RESPONSES,
)
def curves_plot(
    experiment_id: ExperimentId, request: Request, user: CurrentUser, session: SessionDep
) -> Response:
    """Validation accuracy per task over the epochs, task boundaries dashed (PNG, 800 × 450
    px); 409 before the first epoch has finished."""
    return _plot(request, session, experiment_id, "curves")


@router.get(
    "/{experiment_id}/export.csv",
    operation_id="export_csv",
    response_class=Response,
    responses={200: text_body("text/csv", "A CSV file (UTF-8)"), **_NOT_FOUND},
)
def export_csv(experiment_id: ExperimentId, user: CurrentUser, session: SessionDep) -> Response:
    """The metrics as CSV: one row per epoch (validation accuracy per task), then one
    "test" row per finished task (the accuracy matrix). Accuracies are fractions."""
    return reports.csv_export(session, experiment_id)


@router.get(
    "/{experiment_id}/export.json",
    operation_id="export_json",
    response_model=ExperimentExport,
    responses={200: {"description": "A JSON file (sent as a download)"}, **_NOT_FOUND},
)
def export_json(experiment_id: ExperimentId, user: CurrentUser, session: SessionDep) -> Response:
    """The experiment and its metrics document in one file: {"experiment", "metrics"}."""
    return reports.json_export(session, experiment_id)
