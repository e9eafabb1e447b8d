"""The dashboard's read-only pages: the experiment list (and its live progress), an
experiment's detail (plots, events, exports, artifacts), the comparison, a sweep's page.

Images, exports, artifacts and events have session-authenticated twins of their `/v1`
routes here, so the browser needs no JavaScript to send a bearer header.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse

from api import parsing, plots
from api.deps import MAX_ID, ExperimentId, SessionDep, SettingsDep, SweepId
from api.routes.dashboard.common import PageUser, experiment_or_404, make_router, render
from api.services import artifacts as artifact_service
from api.services import logs as log_service
from api.services import reports, runs
from api.services import sweeps as sweep_service
from api.services.events import sse_response
from api.vocabulary import COMPARE_PLOT_KINDS, PLOT_KINDS
from store import experiments as store_experiments
from store import sweeps as store_sweeps
from store.errors import NotFound, StoreError
from store.run_filter import FilterError
from store.vocabulary import STATUSES, SWEEP_METRICS, JobStatus

router = make_router()


#: The list's sortable columns: header → the `order_by` key it sorts by.
SORTABLE: dict[str, str] = {
    "name": "name", "owner": "owner", "status": "status", "avg": "metrics.average_accuracy",
    "bwt": "metrics.bwt", "sweep": "sweep",
}  # fmt: skip


@router.get("/", response_class=HTMLResponse)
def experiment_list(
    request: Request,
    user: PageUser,
    session: SessionDep,
    filter_: Annotated[str | None, Query(alias="filter")] = None,
    order_by: str | None = None,
    status_: Annotated[str | None, Query(alias="status")] = None,
    tag: str | None = None,
    owner: str | None = None,
    cursor: str | None = None,
    submitted: int | None = None,
    project: str | None = None,
    archived: str | None = None,
):
    """The experiment list: the filter box takes the grammar of docs/filters.md (a bad
    filter is a 422 page that shows the message), column headers sort (order_by)."""
    error, code = None, 200
    try:
        page = runs.search(
            session,
            filter=filter_ or None,
            order_by=order_by or None,
            status=JobStatus(status_) if status_ in STATUSES else None,
            tag=tag or None,
            owner=owner or None,
            limit=50,
            cursor=cursor or None,
            project=project or None,
            archived=bool(archived),
        )
    except StoreError as exc:
        error, page = str(exc), store_experiments.ExperimentPage(items=[], next_cursor=None)
        if isinstance(exc, FilterError):  # the 422 of the API, shown on the page
            code = 422
            error = f"{exc.field}: {exc}" if exc.field in ("filter", "order_by") else error
    filters = {"filter": filter_ or "", "order_by": order_by or "", "status": status_ or "",
               "tag": tag or "", "owner": owner or "", "project": project or "",
               "archived": "1" if archived else ""}  # fmt: skip
    return render(
        request, "experiments.html", user, code, experiments=page.items,
        next_cursor=page.next_cursor, filters=filters, submitted=submitted, error=error,
        sort_links=_sort_links(filters), older=_list_url(filters, cursor=page.next_cursor),
    )  # fmt: skip


def _list_url(filters: dict[str, str], **changes: str | None) -> str:
    """The list page's address with `filters` (and `changes`); empty values left out."""
    query = {k: v for k, v in {**filters, **changes}.items() if v}
    return "/ui/" + (f"?{urlencode(query)}" if query else "")


def _sort_links(filters: dict[str, str]) -> dict[str, tuple[str, str | None]]:
    """{column: (address, "ascending" | "descending" | None)}: a header sorts by its key
    ascending, or descending when the list is sorted by it ascending already."""
    current = filters["order_by"].split()
    key = current[0] if current else ""
    descending = len(current) > 1 and current[1].lower() == "desc"
    links: dict[str, tuple[str, str | None]] = {}
    for column, sort_key in SORTABLE.items():
        state = None if key != sort_key else ("descending" if descending else "ascending")
        target = f"{sort_key} desc" if state == "ascending" else sort_key
        links[column] = (_list_url(filters, order_by=target), state)
    return links


@router.get("/progress")
def progress(user: PageUser, session: SessionDep, ids: str = "") -> JSONResponse:
    """{id: {"status", "progress", "summary"}} for the list page's live updates."""
    try:  # the one strict id parser: ASCII digits, ids a row can have
        wanted = parsing.parse_id_list(ids, max_count=200)
    except parsing.ParseError as exc:
        raise reports.InvalidIds(f"ids: {exc}") from None
    out = {}
    for exp in reports.load_existing(session, wanted):
        out[exp.id] = {
            "status": exp.status.value,
            **exp.progress,
            "average_accuracy": (exp.summary or {}).get("average_accuracy"),
            "bwt": (exp.summary or {}).get("bwt"),
        }
    return JSONResponse(out)


@router.get("/experiments/{experiment_id}", response_class=HTMLResponse)
def experiment_page(
    request: Request,
    experiment_id: ExperimentId,
    user: PageUser,
    session: SessionDep,
    settings: SettingsDep,
):
    exp = experiment_or_404(session, experiment_id)
    doc = store_experiments.metrics_document(session, exp)
    return render(
        request, "experiment.html", user, exp=exp, doc=doc,
        num_tasks=max([exp.num_tasks] + [len(r["val_accuracy"]) for r in doc["epochs"]]),
        **artifact_service.listing_for_page(session, settings, exp.id),
        **log_service.page_context(session, exp),
        spec_rows=sorted(reports.flatten(exp.spec or {}).items()),
    )  # fmt: skip


@router.get("/experiments/{experiment_id}/logs", response_model=None)
def experiment_logs(
    request: Request, experiment_id: ExperimentId, user: PageUser, session: SessionDep,
    after: Annotated[int, Query(ge=0, le=MAX_ID)] = 0, follow: bool = False, format: str = "json",
) -> Response:  # fmt: skip
    """The Logs section's twin of `GET /v1/experiments/{id}/logs` (JSON, text, stream)."""
    exp = experiment_or_404(session, experiment_id)
    got = log_service.answer(request, session, exp, after=after, follow=follow,
                             text=format == "text")  # fmt: skip
    return got if isinstance(got, Response) else JSONResponse(got.model_dump(mode="json"))


@router.get("/experiments/{experiment_id}/plots/{kind}.png")
def experiment_plot(
    request: Request, experiment_id: ExperimentId, kind: str, user: PageUser, session: SessionDep
) -> Response:
    exp = experiment_or_404(session, experiment_id)
    if kind not in PLOT_KINDS:
        raise HTTPException(404, f"no plot named {kind!r}")
    try:
        png = reports.experiment_plot(session, reports.plot_cache(request.app.state), exp, kind)
    except plots.NothingToPlot as exc:
        raise HTTPException(409, str(exc)) from None
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-cache"})


@router.get("/experiments/{experiment_id}/events")
def experiment_events(
    request: Request, experiment_id: ExperimentId, user: PageUser, session: SessionDep
) -> StreamingResponse:
    experiment_or_404(session, experiment_id)
    session.commit()  # hold no transaction (on SQLite: no lock) while streaming
    return sse_response(request, experiment_id, request.headers.get("last-event-id"))


@router.get("/experiments/{experiment_id}/export.{fmt}", response_model=None)
def export(experiment_id: ExperimentId, fmt: str, user: PageUser, session: SessionDep) -> Response:
    if fmt == "csv":
        return reports.csv_export(session, experiment_id)
    if fmt == "json":
        return reports.json_export(session, experiment_id)
    raise HTTPException(404, "export as .csv or .json")


@router.get("/experiments/{experiment_id}/artifacts/{path:path}", response_model=None)
def artifact(
    experiment_id: ExperimentId,
    path: str,
    user: PageUser,
    session: SessionDep,
    settings: SettingsDep,
) -> FileResponse | StreamingResponse:
    try:
        return artifact_service.download(session, settings, experiment_id, path)
    except StoreError as exc:
        code = 404 if isinstance(exc, NotFound) else 422
        raise HTTPException(code, str(exc)) from None


@router.get("/compare", response_class=HTMLResponse)
def compare_page(request: Request, user: PageUser, session: SessionDep, ids: str = ""):
    error, doc, exps = None, None, []
    if ids:
        try:
            exps = reports.load_experiments(session, reports.parse_ids(ids))
            doc = reports.comparison(exps)
        except StoreError as exc:
            error = str(exc)
    code = 200 if error is None else (404 if "exist" in error else 422)
    overlay_ids = ",".join(str(e.id) for e in exps[: reports.MAX_COMPARE_PLOT])
    return render(request, "compare.html", user, code, ids=ids, doc=doc, exps=exps, error=error,
                  overlay_ids=overlay_ids, overlay_version=_overlay_version(exps))  # fmt: skip


def _overlay_version(exps) -> str:
    """Changes when any run has new rows or a new status: the overlays' cache buster."""
    return "-".join(
        f"{e.progress['epoch']}.{e.progress['task']}.{e.status.value}.{e.attempts}" for e in exps
    )


@router.get("/compare/plot.png")
def compare_plot(
    request: Request, user: PageUser, session: SessionDep, ids: str = "", kind: str = "accuracy"
) -> Response:
    """The compare page's overlays: `GET /v1/experiments/compare/plot.png`'s twin."""
    if kind not in COMPARE_PLOT_KINDS:
        raise HTTPException(404, f"kind must be one of {', '.join(COMPARE_PLOT_KINDS)}")
    try:
        png = reports.compare_plot(session, reports.plot_cache(request.app.state), ids, kind)
    except plots.NothingToPlot as exc:
        raise HTTPException(409, str(exc)) from None
    except StoreError as exc:
        raise HTTPException(404 if isinstance(exc, NotFound) else 422, str(exc)) from None
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-cache"})


@router.get("/sweeps/{sweep_id}", response_class=HTMLResponse)
def sweep_page(request: Request, sweep_id: SweepId, user: PageUser, session: SessionDep):
    try:
        sweep = store_sweeps.get_sweep(session, sweep_id)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from None
    doc = sweep_service.sweep_document(session, sweep)
    return render(
        request, "sweep.html", user, sweep=doc, x_key=sweep_service.swept_key(sweep.grid),
        has_results=any(p.metrics["average_accuracy"].n for p in doc.points),
    )  # fmt: skip


@router.get("/sweeps/{sweep_id}/plot.png")
def sweep_plot(
    sweep_id: SweepId, user: PageUser, session: SessionDep, metric: str = "average_accuracy"
) -> Response:
    if metric not in SWEEP_METRICS:
        raise HTTPException(404, f"metric must be one of {', '.join(SWEEP_METRICS)}")
    try:
        png = sweep_service.sweep_png(session, sweep_id, metric, None)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from None
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-cache"})
