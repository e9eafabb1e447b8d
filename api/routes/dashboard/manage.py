"""The experiment page's management forms: Re-run, Edit (name, tags, notes, project),
Archive and Restore; and the sweep page's Cancel. Each POST passes `guard` first (same
origin, the form's shape, the session's form token) and calls `api.services.manage`, as the v1 routes do; a refused one
changes nothing and shows why (403 not yours, 409 still running, 422 a bad field, 429 the
per-user cap)."""

from __future__ import annotations

from fastapi import HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from api.deps import CeleryDep, ExperimentId, SessionDep, SettingsDep, SweepId
from api.errors import SpecProblems
from api.routes.dashboard import guard
from api.routes.dashboard.common import PageSession, make_router, render
from api.services import manage
from api.submission import wake
from common.schemas_manage import ExperimentEdit
from continual_core.spec import validation_problems
from store.errors import Conflict, InvalidInput, LimitReached, NotFound, StoreError

router = make_router()

#: The edit form's fields (all sent, empty ones included).
EDIT_FIELDS = ("name", "tags", "notes", "project")
_CODES = ((NotFound, 404), (Conflict, 409), (LimitReached, 429), (InvalidInput, 422))


def _back(experiment_id: int, note: str = "") -> RedirectResponse:
    suffix = f"?done={note}" if note else ""
    return RedirectResponse(f"/ui/experiments/{experiment_id}{suffix}", status.HTTP_303_SEE_OTHER)


def _refused(request: Request, user, code: int, message: str) -> HTMLResponse:
    return render(request, "refused.html", user, code, message=message)


def _attempt(request: Request, session, user, action):
    """`action()`'s answer, or the refused page of its 403/404/409/422/429 (rolled back)."""
    try:
        return action()
    except HTTPException as exc:
        session.rollback()
        return _refused(request, user, exc.status_code, str(exc.detail))
    except SpecProblems as exc:
        session.rollback()
        return _refused(request, user, 422, "; ".join(f"{f}: {m}" for f, m in exc.problems))
    except StoreError as exc:
        session.rollback()
        code = next((c for kind, c in _CODES if isinstance(exc, kind)), 400)
        return _refused(request, user, code, str(exc))


async def _form(request: Request, browser_session, fields=(), required=()):
    try:
        return await guard.posted_form(request, browser_session.csrf_token, fields, required)
    except guard.Refused as exc:
        return _refused(request, browser_session.user, exc.code, exc.message)


async def _act(request: Request, browser_session, session, action):
    """The answer of a form without fields: `guard`, then `action(user)` in a worker thread,
    refused as `_attempt` refuses."""
    form = await _form(request, browser_session)
    if not isinstance(form, dict):
        return form
    user = browser_session.user
    return await run_in_threadpool(_attempt, request, session, user, lambda: action(user))


@router.post("/experiments/{experiment_id}/rerun", response_class=HTMLResponse)
async def rerun(
    request: Request,
    experiment_id: ExperimentId,
    browser_session: PageSession,
    session: SessionDep,
    settings: SettingsDep,
    celery: CeleryDep,
):
    def run(user):
        created = manage.rerun(session, settings, user, experiment_id, None)
        wake(session, celery, [created])  # commits, then sends
        return _back(created.id, "rerun")

    return await _act(request, browser_session, session, run)


@router.post("/experiments/{experiment_id}/edit", response_class=HTMLResponse)
async def edit(
    request: Request, experiment_id: ExperimentId, browser_session: PageSession, session: SessionDep
):
    form = await _form(request, browser_session, EDIT_FIELDS, EDIT_FIELDS)
    if not isinstance(form, dict):
        return form
    user = browser_session.user
    tags = [t.strip() for t in form["tags"].replace("\n", ",").split(",") if t.strip()]
    fields = {"name": form["name"].strip() or None, "tags": tags,
              "notes": form["notes"].strip() or None}  # fmt: skip
    if form["project"].strip():  # an empty box keeps the project
        fields["project"] = form["project"].strip()
    try:
        body = ExperimentEdit(**fields)
    except ValidationError as exc:
        problems = "; ".join(f"{f}: {m}" for f, m in validation_problems(exc))
        return _refused(request, user, 422, f"refused: {problems}")

    def run():
        manage.edit(session, user, experiment_id, body)
        return _back(experiment_id, "edited")

    return await run_in_threadpool(_attempt, request, session, user, run)


@router.post("/experiments/{experiment_id}/archive", response_class=HTMLResponse)
async def archive(
    request: Request, experiment_id: ExperimentId, browser_session: PageSession, session: SessionDep
):
    def run(user):
        manage.archive(session, user, experiment_id)
        return _back(experiment_id, "archived")

    return await _act(request, browser_session, session, run)


@router.post("/experiments/{experiment_id}/restore", response_class=HTMLResponse)
async def restore(
    request: Request, experiment_id: ExperimentId, browser_session: PageSession, session: SessionDep
):
    def run(user):
        manage.restore(session, user, experiment_id)
        return _back(experiment_id, "restored")

    return await _act(request, browser_session, session, run)


@router.post("/sweeps/{sweep_id}/cancel", response_class=HTMLResponse)
async def cancel_sweep(
    request: Request, sweep_id: SweepId, browser_session: PageSession, session: SessionDep
):
    def run(user):
        manage.cancel_sweep(session, user, sweep_id)
        return RedirectResponse(f"/ui/sweeps/{sweep_id}", status.HTTP_303_SEE_OTHER)

    return await _act(request, browser_session, session, run)
