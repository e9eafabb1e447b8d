"""The v1 API's bodies: the wire models live in `common.schemas` (shared with the Python
client, `client/`); this module re-exports them for the routes and services and builds
them from stored rows.

Accuracies are fractions in [0, 1]; times are seconds; datetimes are ISO 8601 in UTC.
"""

from __future__ import annotations

from common.schemas import (  # noqa: F401 - re-exported for the routes and services
    ArtifactList,
    ArtifactOut,
    CompareRow,
    Comparison,
    EpochRow,
    ErrorMessage,
    ExperimentExport,
    ExperimentOut,
    ExperimentPage,
    Health,
    Metrics,
    MetricStats,
    Problem,
    ProblemList,
    Progress,
    QueueDepth,
    Queues,
    Summary,
    SweepCreated,
    SweepList,
    SweepOut,
    SweepPoint,
    SweepRun,
    SweepSummary,
    Timings,
    WorkerOut,
)
from store.models import Experiment


def experiment_out(e: Experiment) -> ExperimentOut:
    """The response body of a stored experiment (owner and tags loaded)."""
    return ExperimentOut(
        id=e.id,
        name=e.name,
        tags=e.tag_names,
        owner=e.owner.name,
        status=e.status,
        spec=e.spec,
        queue=e.queue,
        priority=e.priority,
        progress=Progress(**e.progress),
        summary=e.summary,
        error=e.error,
        timings=e.timings,
        device=e.device,
        worker=e.worker,
        attempts=e.attempts,
        cancel_requested=e.cancel_requested,
        sweep_id=e.sweep_id,
        created_at=e.created_at,
        started_at=e.started_at,
        finished_at=e.finished_at,
        project=e.project,
        rerun_of=e.rerun_of,
        notes=e.notes,
        archived_at=e.archived_at,
    )
