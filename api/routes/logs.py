"""`GET /v1/experiments/{id}/logs`: a job's captured log lines (`api.services.logs`).

JSON pages after a cursor, the whole log as text (`?format=text`), or the lines as they
come as server-sent events (`?follow=true`, or `Accept: text/event-stream`). Anyone who may
read the experiment may read its log.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import Response

from api.deps import MAX_ID, CurrentUser, ExperimentId, SessionDep
from api.openapi import text_body
from api.schemas import ErrorMessage, ProblemList
from api.services import logs as log_service
from common.schemas_logs import LogPage
from store import experiments

router = APIRouter(
    prefix="/v1/experiments",
    tags=["logs"],
    responses={401: {"model": ErrorMessage, "description": "Missing, unknown or revoked token"}},
)


@router.get(
    "/{experiment_id}/logs",
    operation_id="get_logs",
    response_model=LogPage,
    responses={
        200: {
            "description": "A page of lines (JSON), the log as text, or a stream of lines",
            "content": {
                **text_body("text/plain", "")["content"],
                **text_body("text/event-stream", "")["content"],
            },
        },
        404: {"model": ErrorMessage, "description": "No experiment with this id"},
        422: {"model": ProblemList, "description": "Bad after, limit or format"},
    },
)
def get_logs(
    experiment_id: ExperimentId,
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    after: Annotated[
        int, Query(ge=0, le=MAX_ID, description="Only lines with a larger id (`next_after`)")
    ] = 0,
    limit: Annotated[
        int, Query(ge=1, le=log_service.PAGE_MAX, description="Most lines in a JSON page")
    ] = log_service.PAGE_DEFAULT,
    follow: Annotated[
        bool, Query(description="Stream the lines as server-sent events until the job ends")
    ] = False,
    format: Annotated[
        Literal["json", "text"], Query(description="`text`: the whole log as text/plain")
    ] = "json",
    last_event_id: Annotated[str | None, Header()] = None,
) -> LogPage | Response:
    """The job's log lines (its loggers, TensorFlow's warnings, a failure's traceback), in
    the order the worker wrote them, each with its attempt. JSON: up to `limit` lines after
    `after`, `next_after` to continue, `finished` once the job has ended and nothing more
    will come. `follow=true` (or `Accept: text/event-stream`): `line` events as they are
    stored, then `end`; resumes after `Last-Event-ID`. `format=text`: the log as text."""
    experiment = experiments.get_experiment(session, experiment_id)
    return log_service.answer(request, session, experiment, after=after, limit=limit,
                              follow=follow, text=format == "text")  # fmt: skip
