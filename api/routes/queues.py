"""`/v1/queues`: per queue, how many jobs wait and run, and which workers are alive."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter

from api.deps import CurrentUser, SessionDep, SettingsDep
from api.schemas import ErrorMessage, Queues, WorkerOut
from store import experiments, workers

router = APIRouter(
    prefix="/v1/queues",
    tags=["queues"],
    responses={401: {"model": ErrorMessage, "description": "Missing, unknown or revoked token"}},
)


@router.get("", operation_id="get_queues")
def get_queues(user: CurrentUser, session: SessionDep, settings: SettingsDep) -> Queues:
    """Per queue: waiting and running jobs and the live workers (with their device); jobs
    by status; workers whose heartbeat expired."""
    depths = {
        queue: {**depth, "workers": []}
        for queue, depth in experiments.queue_depths(session).items()
    }
    dead = []
    for presence in workers.list_workers(session, settings.heartbeat_timeout_s):
        out = WorkerOut.model_validate(asdict(presence))
        if not presence.alive:
            dead.append(out)
            continue
        for queue in presence.queues:
            depths.setdefault(queue, {"waiting": 0, "running": 0, "workers": []})
            depths[queue]["workers"].append(out)
    return Queues.model_validate(
        {"queues": depths, "status": experiments.status_counts(session), "dead_workers": dead}
    )
