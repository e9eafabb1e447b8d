"""`/v1/queues`: how many jobs wait and run on each queue."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import CurrentUser, SessionDep
from api.schemas import Queues
from store import experiments

router = APIRouter(prefix="/v1/queues", tags=["queues"])


@router.get("")
def get_queues(user: CurrentUser, session: SessionDep) -> Queues:
    """Waiting and running jobs per queue, and experiments by status."""
    return Queues.model_validate(
        {"queues": experiments.queue_depths(session), "status": experiments.status_counts(session)}
    )
