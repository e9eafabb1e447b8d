"""The dashboard's Datasets page (`/ui/datasets`): every uploaded dataset (shape, classes,
size, owner, checksum), an upload form, and a delete button for your own (any, as an
admin). The upload is a multipart form, so it is checked here as `guard` checks the
others (same origin, the session's form token) before the file is read; then it goes
through the API's own service (`api.services.datasets`): the same checks and messages."""

from __future__ import annotations

from fastapi import HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from api.deps import SessionDep, SettingsDep
from api.errors import SpecProblems
from api.routes.dashboard import guard
from api.routes.dashboard.common import PageSession, PageUser, make_router, render
from api.services import datasets as service
from store import datasets as store_datasets
from store.errors import StoreError

router = make_router()
MULTIPART = "multipart/form-data"


def _page(request: Request, session, user, code: int = 200, message: str | None = None,
          uploaded: str | None = None):  # fmt: skip
    rows = [service.out(row, owner) for row, owner in store_datasets.list_datasets(session)]
    return render(request, "datasets.html", user, code, datasets=rows, message=message,
                  uploaded=uploaded, max_mb=request.app.state.settings.max_dataset_mb)  # fmt: skip


@router.get("/datasets", response_class=HTMLResponse)
def datasets_page(request: Request, user: PageUser, session: SessionDep,
                  uploaded: str | None = None):  # fmt: skip
    return _page(request, session, user, uploaded=uploaded)


@router.post("/datasets", response_class=HTMLResponse)
async def upload(
    request: Request, browser_session: PageSession, session: SessionDep, settings: SettingsDep
):
    user = browser_session.user
    try:
        guard.check_same_origin(request)
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != MULTIPART:
            raise guard.Refused(415, f"refused: the upload form sends {MULTIPART}")
        form = await request.form(max_files=1, max_fields=10)
        guard.check_token(form.get(guard.CSRF_FIELD), browser_session.csrf_token)
    except guard.Refused as exc:
        return render(request, "refused.html", user, exc.code, message=exc.message)
    path = None
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile) or not upload.filename:
            raise SpecProblems([("file", "missing: choose the .npz file to upload")])
        name, description = service.check_fields(form.get("name"), form.get("description"))
        path, checksum, size = await run_in_threadpool(service.spool, upload.file, settings)
        await run_in_threadpool(
            service.create, session, settings, user, path=path, checksum=checksum, size=size,
            name=name, description=description,
        )  # fmt: skip
    except SpecProblems as exc:
        text = "; ".join(f"{f}: {m}" for f, m in exc.problems)
        return await run_in_threadpool(_page, request, session, user, 422, text)
    except StoreError as exc:  # the name is taken
        return await run_in_threadpool(_page, request, session, user, 409, str(exc))
    except HTTPException as exc:  # too large, the store away
        return await run_in_threadpool(_page, request, session, user, exc.status_code, exc.detail)
    finally:
        await form.close()
        if path is not None:
            path.unlink(missing_ok=True)
    return RedirectResponse(f"/ui/datasets?uploaded={name}", status.HTTP_303_SEE_OTHER)


@router.post("/datasets/{name}/delete", response_class=HTMLResponse)
async def delete_form(
    request: Request, name: str, browser_session: PageSession, session: SessionDep,
    settings: SettingsDep,
):  # fmt: skip
    user = browser_session.user
    try:
        await guard.posted_form(request, browser_session.csrf_token, (), ())
    except guard.Refused as exc:
        return render(request, "refused.html", user, exc.code, message=exc.message)
    return await run_in_threadpool(_delete, request, session, settings, user, name)


def _delete(request: Request, session, settings, user, name: str):
    try:
        service.remove(session, settings, user, name)
    except StoreError as exc:  # unknown, or in use
        return _page(request, session, user, 404 if "no dataset" in str(exc) else 409, str(exc))
    except HTTPException as exc:  # not yours
        return _page(request, session, user, exc.status_code, exc.detail)
    return RedirectResponse("/ui/datasets", status.HTTP_303_SEE_OTHER)
