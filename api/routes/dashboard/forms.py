"""The dashboard's forms that change something: cancel an experiment, submit one, start a
sweep. Each POST passes `guard` first (same origin, the form's shape, the session's form
token); a refused one changes nothing and shows why on its page."""

from __future__ import annotations

import json

from fastapi import Request, status
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from api import dashboard_forms as forms
from api.deps import CeleryDep, ExperimentId, SessionDep, SettingsDep
from api.errors import SpecProblems
from api.routes.dashboard import guard
from api.routes.dashboard.common import (
    PageSession,
    PageUser,
    experiment_or_404,
    make_router,
    render,
)
from api.submission import create_experiment, create_sweep, wake
from store import datasets as store_datasets
from store import experiments as store_experiments
from store import sweeps as store_sweeps
from store.errors import StoreError

router = make_router()


@router.post("/experiments/{experiment_id}/cancel", response_class=HTMLResponse)
async def cancel(
    request: Request, experiment_id: ExperimentId, browser_session: PageSession, session: SessionDep
):
    user = browser_session.user
    try:
        await guard.posted_form(request, browser_session.csrf_token, (), ())
    except guard.Refused as exc:
        return render(request, "refused.html", user, exc.code, message=exc.message)
    return await run_in_threadpool(_cancel, session, user, experiment_id)


def _cancel(session, user, experiment_id: int) -> RedirectResponse:
    exp = experiment_or_404(session, experiment_id)
    if exp.owner_id == user.id or user.is_admin:
        try:
            store_experiments.request_cancel(session, experiment_id)
        except StoreError:
            pass  # already finished: the page shows it
    return RedirectResponse(f"/ui/experiments/{experiment_id}", status.HTTP_303_SEE_OTHER)


# New experiment ---------------------------------------------------------------------------


def _new_page(request: Request, user, session, code: int, form, errors: dict[str, str]):
    """The form; its dataset select offers the built-ins and every upload (`user:<name>`)."""
    uploads = [row for row, _owner in store_datasets.list_datasets(session)]
    return render(request, "new.html", user, code, values=forms.form_values(form), errors=errors,
                  choices=forms.CHOICES, datasets=forms.dataset_options(uploads))  # fmt: skip


@router.get("/new", response_class=HTMLResponse)
def new_page(request: Request, user: PageUser, session: SessionDep):
    return _new_page(request, user, session, 200, None, {})


@router.post("/new", response_class=HTMLResponse)
async def submit_form(
    request: Request,
    browser_session: PageSession,
    session: SessionDep,
    settings: SettingsDep,
    celery: CeleryDep,
):
    user = browser_session.user
    try:
        form = await guard.posted_form(
            request, browser_session.csrf_token, forms.NEW_FIELDS, forms.NEW_REQUIRED
        )
    except guard.Refused as exc:
        return await run_in_threadpool(
            _new_page, request, user, session, exc.code, None, {"form": exc.message}
        )
    return await run_in_threadpool(_submit, request, user, session, settings, celery, form)


def _submit(request, user, session, settings, celery, form: dict[str, str]):
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
    session.rollback()  # nothing of a refused submission stays (nor a row lock it took)
    return _new_page(request, user, session, 422, form, errors)


# Sweeps -----------------------------------------------------------------------------------

_SWEEP_BASE_EXAMPLE = json.dumps(
    {"dataset": "digits", "dataset_update": "permute", "splits": 3, "epochs": 6, "ewc": {}},
    indent=2,
)


def _sweeps(request, user, session, errors, base, grid, name, code=200):
    rows = store_sweeps.list_sweeps(session, limit=100)
    return render(
        request, "sweeps.html", user, code, sweeps=rows, errors=errors,
        form={"base": base, "grid": grid, "name": name},
    )  # fmt: skip


@router.get("/sweeps", response_class=HTMLResponse)
def sweeps_page(request: Request, user: PageUser, session: SessionDep):
    return _sweeps(
        request, user, session, {}, _SWEEP_BASE_EXAMPLE, "ewc.lambda=1,10,100\nseed=0,1", ""
    )


@router.post("/sweeps", response_class=HTMLResponse)
async def submit_sweep(
    request: Request,
    browser_session: PageSession,
    session: SessionDep,
    settings: SettingsDep,
    celery: CeleryDep,
):
    user = browser_session.user
    try:
        form = await guard.posted_form(
            request, browser_session.csrf_token, forms.SWEEP_FIELDS, forms.SWEEP_FIELDS
        )
    except guard.Refused as exc:
        return await run_in_threadpool(
            _sweeps, request, user, session, {"form": exc.message}, _SWEEP_BASE_EXAMPLE, "", "",
            exc.code,
        )  # fmt: skip
    return await run_in_threadpool(_start_sweep, request, user, session, settings, celery, form)


def _start_sweep(request, user, session, settings, celery, form: dict[str, str]):
    base, grid, name = form["base"], form["grid"], form["name"]
    base_spec, errors = forms.parse_base_spec(base)
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
