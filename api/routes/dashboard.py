"""The web dashboard under `/ui`: server-rendered Jinja2 pages over the same store.

Log in with an API token; it is kept in an HttpOnly, SameSite=Lax cookie, which every
`/ui` route accepts (`/v1` keeps bearer auth). Pages: the experiment list (live progress),
an experiment's detail (spec, summary, plots, per-epoch table, matrix, artifacts, live
events), a comparison, a form that submits an experiment, sweeps. Images, exports,
artifacts and events have cookie-authenticated twins of their `/v1` routes here, so the
browser needs no JavaScript to send a bearer header.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request, status
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from fastapi.templating import Jinja2Templates

from api import dashboard_forms as forms
from api import plots, reports
from api.deps import CeleryDep, ExperimentId, SessionDep, SettingsDep, SweepId
from api.errors import SpecProblems
from api.routes import sweeps as sweep_routes
from api.routes.events import sse_response
from api.submission import create_experiment, create_sweep, wake
from continual_core.spec import DEFAULT_EWC_LAMBDA, DEFAULT_FIM_THRESHOLD
from store import artifacts as store_artifacts
from store import experiments as store_experiments
from store import sweeps as store_sweeps
from store import users
from store.errors import NotFound, StoreError
from store.models import JobStatus, User

COOKIE = "ewc_token"
TEMPLATES = Jinja2Templates(directory=str(Path(__file__).resolve().parent.parent / "templates"))

router = APIRouter(prefix="/ui", include_in_schema=False)
root_router = APIRouter(include_in_schema=False)


def _pct(x: Any, digits: int = 1) -> str:
    return "–" if x is None else f"{100 * float(x):.{digits}f}"


TEMPLATES.env.filters["pct"] = _pct
TEMPLATES.env.filters["tojson_pretty"] = lambda v: json.dumps(v, indent=2, default=str)
TEMPLATES.env.globals["finished_statuses"] = ("succeeded", "failed", "cancelled")
TEMPLATES.env.globals["default_ewc_lambda"] = DEFAULT_EWC_LAMBDA
TEMPLATES.env.globals["default_fim_threshold"] = DEFAULT_FIM_THRESHOLD


def page_user(request: Request, session: SessionDep) -> User:
    """The user of the token cookie; otherwise a 303 redirect to the login page."""
    user = users.authenticate(session, request.cookies.get(COOKIE, ""))
    if user is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise HTTPException(
            status.HTTP_303_SEE_OTHER,
            "log in first",
            headers={"Location": f"/ui/login?next={quote(target)}"},
        )
    return user


PageUser = Annotated[User, Depends(page_user)]


def render(request: Request, name: str, user: User | None, code: int = 200, **ctx: Any):
    """A rendered page with the common context (user, active nav entry)."""
    return TEMPLATES.TemplateResponse(
        request, name, {"user": user, "nav": name.split(".")[0], **ctx}, status_code=code
    )


def _safe_next(target: str | None) -> str:
    return target if target and target.startswith("/ui") and "//" not in target else "/ui/"


STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
STATIC_FILES = {"style.css": "text/css", "dashboard.js": "text/javascript"}


@router.get("/static/{name}", response_model=None)
def static_file(name: str) -> FileResponse:
    """The dashboard's stylesheet and script (a fixed list: no path from the request)."""
    if name not in STATIC_FILES:
        raise HTTPException(404, f"no static file {name!r}")
    return FileResponse(
        STATIC_DIR / name, media_type=STATIC_FILES[name], headers={"Cache-Control": "max-age=300"}
    )


# Login ------------------------------------------------------------------------------------


@root_router.get("/")
def home() -> RedirectResponse:
    """The dashboard lives under /ui."""
    return RedirectResponse("/ui/", status.HTTP_307_TEMPORARY_REDIRECT)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str | None = None):
    return render(request, "login.html", None, next=_safe_next(next), error=None)


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    session: SessionDep,
    token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/ui/",
):
    user = users.authenticate(session, token.strip())
    if user is None:
        return render(
            request, "login.html", None, 401, next=_safe_next(next),
            error="That token is unknown or revoked. `ewc up` prints the admin token; "
            "`ewc users create NAME` makes one for a new user.",
        )  # fmt: skip
    response = RedirectResponse(_safe_next(next), status.HTTP_303_SEE_OTHER)
    response.set_cookie(
        COOKIE, token.strip(), httponly=True, samesite="lax", path="/",
        secure=request.url.scheme == "https", max_age=30 * 24 * 3600,
    )  # fmt: skip
    return response


@router.post("/logout")
def logout() -> RedirectResponse:
    response = RedirectResponse("/ui/login", status.HTTP_303_SEE_OTHER)
    response.delete_cookie(COOKIE, path="/")
    return response


# Experiments ------------------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
def experiment_list(
    request: Request,
    user: PageUser,
    session: SessionDep,
    status_: Annotated[str | None, Query(alias="status")] = None,
    tag: str | None = None,
    owner: str | None = None,
    cursor: str | None = None,
    submitted: int | None = None,
):
    statuses = [s.value for s in JobStatus]
    error = None
    try:
        page = store_experiments.list_experiments(
            session,
            status=JobStatus(status_) if status_ in statuses else None,
            tag=tag or None,
            owner=owner or None,
            limit=50,
            cursor=cursor or None,
        )
    except StoreError as exc:
        error, page = str(exc), store_experiments.ExperimentPage(items=[], next_cursor=None)
    return render(
        request, "experiments.html", user, experiments=page.items, next_cursor=page.next_cursor,
        filters={"status": status_ or "", "tag": tag or "", "owner": owner or ""},
        statuses=statuses, submitted=submitted, error=error,
    )  # fmt: skip


@router.get("/progress")
def progress(user: PageUser, session: SessionDep, ids: str = "") -> JSONResponse:
    """{id: {"status", "progress", "summary"}} for the list page's live updates."""
    wanted = [int(i) for i in ids.split(",") if i.strip().isdigit()][:200]
    out = {}
    for exp in reports.load_existing(session, wanted):
        out[exp.id] = {
            "status": exp.status.value,
            "task": exp.current_task, "num_tasks": exp.num_tasks,
            "epoch": exp.current_epoch, "total_epochs": exp.total_epochs,
            "average_accuracy": (exp.summary or {}).get("average_accuracy"),
            "bwt": (exp.summary or {}).get("bwt"),
        }  # fmt: skip
    return JSONResponse(out)


@router.get("/experiments/{experiment_id}", response_class=HTMLResponse)
def experiment_page(
    request: Request, experiment_id: ExperimentId, user: PageUser, session: SessionDep, settings: SettingsDep
):
    exp = _experiment_or_404(session, experiment_id)
    doc = store_experiments.metrics_document(session, exp)
    return render(
        request, "experiment.html", user, exp=exp, doc=doc,
        num_tasks=max([exp.num_tasks] + [len(r["val_accuracy"]) for r in doc["epochs"]]),
        artifacts=store_artifacts.list_artifacts(settings.resolved_artifacts_dir(), exp.id),
        spec_rows=sorted(reports.flatten(exp.spec or {}).items()),
    )  # fmt: skip


@router.post("/experiments/{experiment_id}/cancel")
def cancel(experiment_id: ExperimentId, user: PageUser, session: SessionDep) -> RedirectResponse:
    exp = _experiment_or_404(session, experiment_id)
    if exp.owner_id == user.id or user.is_admin:
        try:
            store_experiments.request_cancel(session, experiment_id)
        except StoreError:
            pass  # already finished: the page shows it
    return RedirectResponse(f"/ui/experiments/{experiment_id}", status.HTTP_303_SEE_OTHER)


@router.get("/experiments/{experiment_id}/plots/{kind}.png")
def experiment_plot(
    request: Request, experiment_id: ExperimentId, kind: str, user: PageUser, session: SessionDep
) -> Response:
    exp = _experiment_or_404(session, experiment_id)
    if kind not in plots.PLOT_KINDS:
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
    _experiment_or_404(session, experiment_id)
    session.commit()  # hold no transaction (on SQLite: no lock) while streaming
    return sse_response(request, experiment_id, request.headers.get("last-event-id"))


@router.get("/experiments/{experiment_id}/export.{fmt}", response_model=None)
def export(experiment_id: ExperimentId, fmt: str, user: PageUser, session: SessionDep) -> Response:
    from api.routes import reports as report_routes

    if fmt == "csv":
        return report_routes.export_csv(experiment_id, user, session)
    if fmt == "json":
        return report_routes.export_json(experiment_id, user, session)
    raise HTTPException(404, "export as .csv or .json")


@router.get("/experiments/{experiment_id}/artifacts/{path:path}", response_model=None)
def artifact(
    experiment_id: ExperimentId, path: str, user: PageUser, session: SessionDep, settings: SettingsDep
) -> FileResponse | StreamingResponse:
    from api.routes import artifacts as artifact_routes

    try:
        return artifact_routes.download_artifact(experiment_id, path, user, session, settings)
    except StoreError as exc:
        code = 404 if isinstance(exc, NotFound) else 422
        raise HTTPException(code, str(exc)) from None


def _experiment_or_404(session, experiment_id: int):
    try:
        return store_experiments.get_experiment(session, experiment_id)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from None


# Compare ----------------------------------------------------------------------------------


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
    return render(request, "compare.html", user, code, ids=ids, doc=doc, exps=exps, error=error)


# New experiment ---------------------------------------------------------------------------


@router.get("/new", response_class=HTMLResponse)
def new_page(request: Request, user: PageUser):
    return render(
        request, "new.html", user, values=forms.form_values(), errors={}, choices=forms.CHOICES
    )


@router.post("/new", response_class=HTMLResponse)
async def submit_form(
    request: Request, user: PageUser, session: SessionDep, settings: SettingsDep, celery: CeleryDep
):
    form = await request.form()
    spec, errors = forms.spec_from_form(form)
    if spec is not None:
        try:
            exp = create_experiment(session, settings, user, spec)
        except SpecProblems as exc:
            errors = forms.problems_by_field(exc.problems)
        except StoreError as exc:  # the per-user cap
            errors = {"form": str(exc)}
        else:
            wake(session, celery, [exp])  # commits, then sends
            return RedirectResponse(f"/ui/?submitted={exp.id}", status.HTTP_303_SEE_OTHER)
    return render(
        request, "new.html", user, 422, values=forms.form_values(form), errors=errors,
        choices=forms.CHOICES,
    )  # fmt: skip


# Sweeps -----------------------------------------------------------------------------------

_SWEEP_BASE_EXAMPLE = json.dumps(
    {"dataset": "digits", "dataset_update": "permute", "splits": 3, "epochs": 6, "ewc": {}},
    indent=2,
)


@router.get("/sweeps", response_class=HTMLResponse)
def sweeps_page(request: Request, user: PageUser, session: SessionDep):
    return _sweeps(request, user, session, {}, _SWEEP_BASE_EXAMPLE, "ewc.lambda=1,10,100\nseed=0,1", "")


def _sweeps(request, user, session, errors, base, grid, name, code=200):
    rows = store_sweeps.list_sweeps(session, limit=100)
    return render(
        request, "sweeps.html", user, code, sweeps=rows, errors=errors,
        form={"base": base, "grid": grid, "name": name},
    )  # fmt: skip


@router.post("/sweeps", response_class=HTMLResponse)
def submit_sweep(
    request: Request,
    user: PageUser,
    session: SessionDep,
    settings: SettingsDep,
    celery: CeleryDep,
    base: Annotated[str, Form()] = "{}",
    grid: Annotated[str, Form()] = "",
    name: Annotated[str, Form()] = "",
):
    errors: dict[str, str] = {}
    try:
        base_spec = json.loads(base or "{}")
    except ValueError as exc:
        base_spec, errors["base"] = {}, f"not a JSON object: {exc}"
    if not isinstance(base_spec, dict):
        base_spec, errors["base"] = {}, "not a JSON object: the base spec must be {...}"
    grid_dict, grid_errors = forms.parse_grid_text(grid)
    errors.update(grid_errors)
    if not errors:
        try:
            sweep, created = create_sweep(
                session, settings, user, base=base_spec, grid=grid_dict, name=name.strip() or None
            )
        except SpecProblems as exc:
            errors = {"form": "; ".join(f"{f}: {m}" for f, m in exc.problems)}
        except StoreError as exc:
            errors = {"form": str(exc)}
        else:
            wake(session, celery, created)  # commits, then sends
            return RedirectResponse(f"/ui/sweeps/{sweep.id}", status.HTTP_303_SEE_OTHER)
    session.rollback()
    return _sweeps(request, user, session, errors, base, grid, name, 422)


@router.get("/sweeps/{sweep_id}", response_class=HTMLResponse)
def sweep_page(request: Request, sweep_id: SweepId, user: PageUser, session: SessionDep):
    try:
        sweep = store_sweeps.get_sweep(session, sweep_id)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from None
    doc = sweep_routes.sweep_document(session, sweep)
    x_key = sweep_routes.swept_key(sweep.grid)
    return render(
        request, "sweep.html", user, sweep=doc, x_key=x_key,
        has_results=any(p.metrics["average_accuracy"].n for p in doc.points),
        metrics=store_sweeps.SWEEP_METRICS,
    )  # fmt: skip


@router.get("/sweeps/{sweep_id}/plot.png")
def sweep_plot(
    sweep_id: SweepId, user: PageUser, session: SessionDep, metric: str = "average_accuracy"
) -> Response:
    if metric not in store_sweeps.SWEEP_METRICS:
        raise HTTPException(404, f"metric must be one of {', '.join(store_sweeps.SWEEP_METRICS)}")
    try:
        png = sweep_routes.sweep_png(session, sweep_id, metric, None)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from None
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-cache"})
