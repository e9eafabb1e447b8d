"""`GET /v1/experiments/{id}/events`: live progress as server-sent events.

The stream itself (its events, ids, keep-alives and the shared poller) is
`api.services.events`, shared with the dashboard's twin of this route.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import StreamingResponse

from api.deps import CurrentUser, ExperimentId, SessionDep
from api.openapi import text_body
from api.schemas import ErrorMessage
from api.services.events import sse_response
from store import experiments

router = APIRouter(
    prefix="/v1/experiments",
    tags=["events"],
    responses={401: {"model": ErrorMessage, "description": "Missing, unknown or revoked token"}},
)


@router.get(
    "/{experiment_id}/events",
    operation_id="stream_events",
    response_class=StreamingResponse,
    responses={
        200: text_body("text/event-stream", "status/epoch/task/end events"),
        404: {"model": ErrorMessage, "description": "No experiment with this id"},
    },
)
def experiment_events(
    experiment_id: ExperimentId,
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """Live progress: `status`, `epoch`, `task` events as they are stored, `end` when the job
    finishes (then the stream closes). Resumes after `Last-Event-ID`."""
    experiments.get_experiment(session, experiment_id)
    # End the request's transaction now: the stream may last hours, and on SQLite an open
    # transaction holds the write lock the worker needs.
    session.commit()
    return sse_response(request, experiment_id, last_event_id)
