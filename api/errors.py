"""Exception handlers: every error becomes a 4xx/503 JSON body a person can act on.

- request validation → 422 {"detail": [{"field", "message"}, ...]}
- store errors: NotFound → 404, Conflict → 409, LimitReached → 429, InvalidInput → 422
- a value the database cannot hold (out of range) → 422
- a database that cannot be reached → 503 (never a 500 with a traceback); one that is only
  busy says so, and `ewc migrate` is suggested only when the schema is missing
- anything else → 500 {"detail": "internal error ..."}, the traceback only in the log
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from continual_core.spec import validation_problems
from store.db import is_lock_conflict
from store.errors import Conflict, InvalidInput, LimitReached, NotFound, StoreError, error_reason

log = logging.getLogger("ewc.api")

_LOCATION_PREFIXES = ("body", "query", "path", "header", "cookie")


class SpecProblems(Exception):
    """A request is well-formed but asks for something this server will not run (→ 422)."""

    def __init__(self, problems: list[tuple[str, str]]):
        super().__init__("; ".join(f"{f}: {m}" for f, m in problems))
        self.problems = problems


class EncodableJSONResponse(JSONResponse):
    """A JSON body that can always be sent: a lone surrogate echoed from the request (JSON
    allows "\\ud800" in a string, UTF-8 cannot encode it) goes out as its JSON escape."""

    def render(self, content: Any) -> bytes:
        text = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        return text.encode("utf-8", "backslashreplace")


def problems_response(problems: list[tuple[str, str]]) -> JSONResponse:
    """422 with one {"field", "message"} per problem."""
    return EncodableJSONResponse(
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        content={"detail": [{"field": f, "message": m} for f, m in problems]},
    )


class _Stripped:
    """A RequestValidationError seen without its location prefix ("body", "query", ...)."""

    def __init__(self, errors: list[dict[str, Any]]):
        self._errors = errors

    def errors(self) -> list[dict[str, Any]]:
        return self._errors


def request_problems(exc: RequestValidationError) -> list[tuple[str, str]]:
    """(field, message) for each error of a request: dotted field paths, allowed values."""
    problems: list[tuple[str, str]] = []
    rest: list[dict[str, Any]] = []
    for err in exc.errors():
        loc = tuple(err.get("loc", ()))
        if err.get("type") == "json_invalid":
            reason = (err.get("ctx") or {}).get("error", "not valid JSON")
            where = f" at character {loc[1]}" if len(loc) > 1 else ""
            problems.append(("body", f"malformed JSON ({reason}{where})"))
            continue
        if loc and loc[0] in _LOCATION_PREFIXES:
            loc = loc[1:]
        if not loc and err.get("type") in ("missing", "model_attributes_type", "dict_type"):
            problems.append(("body", "the body must be a JSON object (the experiment spec)"))
            continue
        if err.get("type") == "enum" and "expected" in (err.get("ctx") or {}):
            field = ".".join(map(str, loc)) or "request"
            allowed = err["ctx"]["expected"]
            problems.append(
                (field, f"{err.get('input')!r} is not allowed; choose one of {allowed}")
            )
            continue
        rest.append({**err, "loc": loc})
    return problems + validation_problems(_Stripped(rest))


async def _validation_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return problems_response(request_problems(exc))


async def _spec_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, SpecProblems)
    return problems_response(exc.problems)


async def _store_handler(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, InvalidInput):
        return problems_response([(exc.field, str(exc))])
    code = status.HTTP_400_BAD_REQUEST
    if isinstance(exc, NotFound):
        code = status.HTTP_404_NOT_FOUND
    elif isinstance(exc, Conflict):
        code = status.HTTP_409_CONFLICT
    elif isinstance(exc, LimitReached):
        code = status.HTTP_429_TOO_MANY_REQUESTS
    return EncodableJSONResponse(status_code=code, content={"detail": str(exc)})


async def _http_handler(request: Request, exc: Exception) -> Response:
    """Starlette's HTTPException answer, with a body that can always be encoded."""
    assert isinstance(exc, StarletteHTTPException)
    headers = getattr(exc, "headers", None)
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code, headers=headers)
    return EncodableJSONResponse(
        status_code=exc.status_code, content={"detail": exc.detail}, headers=headers
    )


async def _database_handler(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, DataError):  # a value the column cannot hold: the request's fault
        reason = error_reason(exc, 200)
        log.warning("event=db_data_error path=%s error=%r", request.url.path, reason)
        return problems_response([("request", f"a value is out of range or malformed: {reason}")])
    if isinstance(exc, IntegrityError):
        log.warning("event=db_conflict path=%s error=%r", request.url.path, str(exc.orig))
        return JSONResponse(
            status_code=status.HTTP_409_CONFLICT,
            content={"detail": "the request conflicts with stored data; retry or change it"},
        )
    reason = error_reason(exc, 300)
    kind, message, retry_after = database_unavailable(exc, reason)
    log.error("event=db_%s path=%s error=%r", kind, request.url.path, reason)
    return JSONResponse(
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        content={"detail": message},
        headers={"Retry-After": str(retry_after)},
    )


#: SQLSTATEs (PostgreSQL) and messages (SQLite) of a schema that is missing or older.
_SCHEMA_SQLSTATES = frozenset({"42P01", "42703"})  # undefined_table, undefined_column
_SCHEMA_MESSAGES = ("no such table", "no such column")


def database_unavailable(exc: Exception, reason: str) -> tuple[str, str, int]:
    """(kind, message, Retry-After seconds) of a 503 for a database error that is not the
    request's fault. `ewc migrate` is suggested only when the schema is really missing;
    a database that is only busy (pool exhausted, SQLite locked) says so."""
    orig = getattr(exc, "orig", None)
    if getattr(orig, "sqlstate", None) in _SCHEMA_SQLSTATES or any(
        m in reason.lower() for m in _SCHEMA_MESSAGES
    ):
        return (
            "not_migrated",
            (
                "the database has no (or an older) schema: run `ewc migrate`, then retry. "
                f"Cause: {reason}"
            ),
            5,
        )
    if isinstance(exc, PoolTimeoutError) or is_lock_conflict(exc):
        return (
            "busy",
            (
                "the server is busy (the database is serving other requests); nothing was "
                "done — retry in 2 s"
            ),
            2,
        )
    return "unavailable", f"the database is unavailable; retry shortly. Cause: {reason}", 5


async def _unexpected_handler(request: Request, exc: Exception) -> JSONResponse:
    log.exception("event=internal_error path=%s", request.url.path, exc_info=exc)
    return JSONResponse(
        status_code=status.HTTP_500_INTERNAL_SERVER_ERROR,
        content={"detail": "internal error; the server log has the details"},
    )


def install_error_handlers(app: FastAPI) -> None:
    """Register every handler above on `app` (`api.openapi` documents the 422 shape)."""
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(StarletteHTTPException, _http_handler)
    app.add_exception_handler(SpecProblems, _spec_handler)
    app.add_exception_handler(StoreError, _store_handler)
    app.add_exception_handler(DBAPIError, _database_handler)
    app.add_exception_handler(PoolTimeoutError, _database_handler)
    app.add_exception_handler(Exception, _unexpected_handler)
