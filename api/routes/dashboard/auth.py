"""Logging in and out of the dashboard, its static files, and `/` → `/ui/`.

Logging in with an API token opens a server-side browser session (`store.browser_sessions`):
the cookie holds only a random session id, the token itself is never stored in the browser.
Logging out deletes the session, so the old cookie value stops working at once. The login
form is protected against login CSRF by the checks of `guard` with a token of its own (a
short-lived cookie of the login page), since no session exists yet.
"""

from __future__ import annotations

import re
from datetime import timedelta

from fastapi import HTTPException, Request, status
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from api.deps import SessionDep, SettingsDep
from api.routes.dashboard import guard
from api.routes.dashboard.common import (
    BASE_DIR,
    OLD_TOKEN_COOKIE,
    SESSION_COOKIE,
    PageSession,
    make_router,
    render,
    safe_next,
)
from api.throttle import throttled_authenticate
from store import browser_sessions

router = make_router()
root_router = make_router(prefix="")

#: The login page's own form token (no session exists before logging in).
LOGIN_COOKIE = "ewc_login_csrf"
LOGIN_PATH = "/ui/login"
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{43}")

STATIC_DIR = BASE_DIR / "static"
STATIC_FILES = {"style.css": "text/css", "dashboard.js": "text/javascript",
                "logs.js": "text/javascript"}  # fmt: skip


@router.get("/static/{name}", response_model=None)
def static_file(name: str) -> FileResponse:
    """The dashboard's stylesheet and script (a fixed list: no path from the request)."""
    if name not in STATIC_FILES:
        raise HTTPException(404, f"no static file {name!r}")
    return FileResponse(
        STATIC_DIR / name, media_type=STATIC_FILES[name], headers={"Cache-Control": "max-age=300"}
    )


@root_router.get("/")
def home() -> RedirectResponse:
    """The dashboard lives under /ui."""
    return RedirectResponse("/ui/", status.HTTP_307_TEMPORARY_REDIRECT)


def _login_page(request: Request, code: int, next_: str | None, error: str | None):
    """The login form with a form token, kept (or set) in the login page's cookie."""
    token = request.cookies.get(LOGIN_COOKIE, "")
    if not _TOKEN_SHAPE.fullmatch(token):
        token = browser_sessions.new_secret()
    response = render(request, "login.html", None, code, next=safe_next(next_), error=error,
                      csrf_token=token)  # fmt: skip
    response.set_cookie(
        LOGIN_COOKIE, token, max_age=3600, path=LOGIN_PATH, httponly=True, samesite="strict",
        secure=request.url.scheme == "https",
    )  # fmt: skip
    return response


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str | None = None):
    return _login_page(request, 200, next, None)


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request, session: SessionDep, settings: SettingsDep):
    try:
        form = await guard.posted_form(
            request, request.cookies.get(LOGIN_COOKIE), ("token", "next"), ("token", "next")
        )
    except guard.Refused as exc:
        return _login_page(request, exc.code, None, exc.message)
    return await run_in_threadpool(_log_in, request, session, settings, form)


def _log_in(request: Request, session, settings, form: dict[str, str]):
    token = form["token"].strip()
    try:
        user = throttled_authenticate(request, session, token) if token else None
    except HTTPException as exc:  # 429: this address failed too often
        response = _login_page(request, exc.status_code, form["next"], str(exc.detail))
        response.headers.update(exc.headers or {})
        return response
    opened = browser_sessions.open_session(
        session, token, timedelta(seconds=settings.session_ttl_s)
    )
    if user is None or opened is None:
        return _login_page(
            request, 401, form["next"],
            "That token is unknown or revoked. `ewc up` prints the admin token; "
            "`ewc users create NAME` makes one for a new user.",
        )  # fmt: skip
    _row, session_id = opened
    # A new session id at every login; the browser's previous session (if any) ends.
    browser_sessions.end_session(session, request.cookies.get(SESSION_COOKIE, ""))
    # Committed before the redirect is sent (the request's session commits only after the
    # response is out): the browser's next request must find the new session.
    session.commit()
    response = RedirectResponse(safe_next(form["next"]), status.HTTP_303_SEE_OTHER)
    response.set_cookie(
        SESSION_COOKIE, session_id, max_age=settings.session_ttl_s, path="/ui", httponly=True,
        samesite="lax", secure=request.url.scheme == "https",
    )  # fmt: skip
    response.delete_cookie(LOGIN_COOKIE, path=LOGIN_PATH)
    response.delete_cookie(OLD_TOKEN_COOKIE, path="/")
    return response


@router.post("/logout", response_class=HTMLResponse)
async def logout(request: Request, browser_session: PageSession, session: SessionDep):
    try:
        await guard.posted_form(request, browser_session.csrf_token, (), ())
    except guard.Refused as exc:
        return render(request, "refused.html", browser_session.user, exc.code, message=exc.message)
    session_id = request.cookies.get(SESSION_COOKIE, "")
    await run_in_threadpool(browser_sessions.end_session, session, session_id)
    response = RedirectResponse(LOGIN_PATH, status.HTTP_303_SEE_OTHER)
    response.delete_cookie(SESSION_COOKIE, path="/ui")
    response.delete_cookie(OLD_TOKEN_COOKIE, path="/")
    return response
