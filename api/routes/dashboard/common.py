"""What every dashboard page shares: the templates, the security headers of its responses,
the page user (from the browser session cookie) and rendering."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from api.vocabulary import template_globals
from continual_core.spec import DEFAULT_EWC_LAMBDA, DEFAULT_FIM_THRESHOLD
from store import browser_sessions
from store import experiments as store_experiments
from store.db import unit_of_work
from store.errors import NotFound
from store.models import BrowserSession, User

#: The session cookie: a random id whose hash names a `browser_sessions` row.
SESSION_COOKIE = "ewc_session"
#: The cookie of earlier versions (it held the raw API token): dropped at login and logout.
OLD_TOKEN_COOKIE = "ewc_token"

BASE_DIR = Path(__file__).resolve().parents[2]
TEMPLATES = Jinja2Templates(directory=str(BASE_DIR / "templates"))


def _pct(x: Any, digits: int = 1) -> str:
    return "–" if x is None else f"{100 * float(x):.{digits}f}"


TEMPLATES.env.filters["pct"] = _pct
TEMPLATES.env.filters["tojson_pretty"] = lambda v: json.dumps(v, indent=2, default=str)
TEMPLATES.env.globals.update(template_globals())
TEMPLATES.env.globals["default_ewc_lambda"] = DEFAULT_EWC_LAMBDA
TEMPLATES.env.globals["default_fim_threshold"] = DEFAULT_FIM_THRESHOLD

#: Scripts, styles, images and connections only from the dashboard itself (no inline script,
#: style attribute or event handler), forms only to itself, never inside a frame.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # Not "no-referrer": that makes browsers send `Origin: null` on the dashboard's own forms.
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def _exception_response(request: Request, exc: Exception) -> Callable[..., Any] | None:
    handlers = request.app.exception_handlers
    for cls in type(exc).__mro__:
        if cls in (Exception, BaseException):
            return None  # an unexpected error: the app's 500 path, as everywhere else
        if cls in handlers:
            return handlers[cls]
    return None


class SecureRoute(APIRoute):
    """A dashboard route: every response it gives, errors included, carries the security
    headers (and `Cache-Control: no-store` unless it sets its own)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def secured(request: Request) -> Response:
            try:
                response = await handler(request)
            except Exception as exc:
                on_error = _exception_response(request, exc)
                if on_error is None:
                    raise
                response = on_error(request, exc)
                if inspect.isawaitable(response):
                    response = await response
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
            response.headers.setdefault("Cache-Control", "no-store")
            return response

        return secured


def make_router(prefix: str = "/ui") -> APIRouter:
    """A router of dashboard routes (not in the OpenAPI schema, security headers on)."""
    return APIRouter(prefix=prefix, include_in_schema=False, route_class=SecureRoute)


def _find_session(request: Request, session_id: str) -> BrowserSession | None:
    state = request.app.state
    factory = getattr(state, "read_session_factory", state.session_factory)
    with unit_of_work(factory) as session:  # short, read-only, over before the handler runs
        return browser_sessions.get_session(session, session_id)


async def page_session(request: Request) -> BrowserSession:
    """The live browser session of the request's cookie (its user loaded), looked up in one
    thread hop with a transaction of its own; otherwise a 303 to the login page."""
    session_id = request.cookies.get(SESSION_COOKIE, "")
    row = await run_in_threadpool(_find_session, request, session_id) if session_id else None
    if row is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise HTTPException(
            status.HTTP_303_SEE_OTHER,
            "log in first",
            headers={"Location": f"/ui/login?next={quote(target)}"},
        )
    request.state.csrf_token = row.csrf_token  # every form of the page carries it
    return row


PageSession = Annotated[BrowserSession, Depends(page_session)]


def page_user(browser_session: PageSession) -> User:
    """The user of the request's browser session (a 303 to the login page without one)."""
    return browser_session.user


PageUser = Annotated[User, Depends(page_user)]


def render(request: Request, name: str, user: User | None, code: int = 200, **ctx: Any):
    """A rendered page with the common context (user, active nav entry, form token)."""
    ctx.setdefault("csrf_token", getattr(request.state, "csrf_token", ""))
    return TEMPLATES.TemplateResponse(
        request, name, {"user": user, "nav": name.split(".")[0], **ctx}, status_code=code
    )


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a dashboard path, never another site."""
    ok = target and target.startswith("/ui") and "//" not in target and "\\" not in target
    return target if ok else "/ui/"


def experiment_or_404(session, experiment_id: int):
    try:
        return store_experiments.get_experiment(session, experiment_id)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from None
