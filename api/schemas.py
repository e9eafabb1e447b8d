"""Response bodies of the v1 API (pydantic). Requests use `continual_core.spec.ExperimentSpec`.

Accuracies are fractions in [0, 1]; times are seconds; datetimes are ISO 8601 in UTC.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from store.models import Experiment, JobStatus


class Problem(BaseModel):
    """One thing wrong with a request: the field (dotted path) and what is allowed."""

    field: str
    message: str


class ProblemList(BaseModel):
    """422: every problem of a request body or query."""

    detail: list[Problem]


class ErrorMessage(BaseModel):
    """4xx/5xx other than validation: one readable sentence."""

    detail: str


class Progress(BaseModel):
    """Where a job is: task k of n, epoch e of m (1-based; 0 before the first one ends)."""

    task: int
    num_tasks: int
    epoch: int
    total_epochs: int


class ExperimentOut(BaseModel):
    """An experiment: its spec, scheduling state, progress and summary."""

    id: int
    name: str | None
    tags: list[str]
    owner: str
    status: JobStatus
    spec: dict[str, Any]
    queue: str
    priority: int
    progress: Progress
    summary: dict[str, Any] | None
    error: str | None
    timings: dict[str, Any] | None
    device: str | None
    worker: str | None
    attempts: int
    cancel_requested: bool
    sweep_id: int | None = None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, e: Experiment) -> ExperimentOut:
        """The response body of a stored experiment (owner and tags loaded)."""
        return cls(
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
        )


class ExperimentPage(BaseModel):
    """A page of experiments, newest first; pass `next_cursor` back as `cursor` for more."""

    items: list[ExperimentOut]
    next_cursor: str | None


class EpochRow(BaseModel):
    """One training epoch: loss and the validation accuracy on every task."""

    task: int
    epoch: int
    task_epoch: int
    loss: float
    val_accuracy: list[float | None]
    train_s: float
    eval_s: float


class Metrics(BaseModel):
    """The result document, the same shape as `ewc run --json`'s last line.

    `accuracy_matrix[i][j]` = test accuracy on task j+1 after training task i+1.
    """

    spec: dict[str, Any]
    epochs: list[EpochRow]
    accuracy_matrix: list[list[float | None]]
    summary: dict[str, Any] | None
    timings: dict[str, Any]
    fisher: str | None
    versions: dict[str, Any]


class WorkerOut(BaseModel):
    """A worker process as it last reported itself (its presence heartbeat)."""

    name: str = Field(description="host:pid:random, as in an experiment's `worker`.")
    hostname: str
    queues: list[str]
    device: str = Field(description='"CPU" or "GPU:0 (<name>)".')
    started_at: datetime
    last_heartbeat: datetime
    heartbeat_age_s: float = Field(description="Seconds since its last heartbeat.")
    alive: bool = Field(description="Heartbeat younger than EWC_HEARTBEAT_TIMEOUT_S.")
    experiment_id: int | None = Field(description="The job it runs now, if any.")
    jobs_run: int


class QueueDepth(BaseModel):
    """Jobs of one queue: waiting (queued) and running, and the live workers serving it."""

    waiting: int
    running: int
    workers: list[WorkerOut] = Field(default_factory=list)


class Queues(BaseModel):
    """Every queue's depth and live workers, and jobs by status."""

    queues: dict[str, QueueDepth]
    status: dict[str, int] = Field(description="Number of experiments in each status.")
    dead_workers: list[WorkerOut] = Field(
        default_factory=list,
        description="Workers whose heartbeat expired in the last day (killed, or cut off).",
    )


class Health(BaseModel):
    """Liveness / readiness: "ok", or which dependency failed and why."""

    status: str
    checks: dict[str, str] = Field(default_factory=dict)


# Sweeps ------------------------------------------------------------------------------------


class SweepCreated(BaseModel):
    """The new sweep and its experiments (all queued)."""

    id: int
    name: str | None
    grid: dict[str, list[Any]]
    experiment_ids: list[int]


class MetricStats(BaseModel):
    """Mean and sample standard deviation over the succeeded runs of a point (fractions)."""

    mean: float | None
    std: float | None
    n: int


class SweepPoint(BaseModel):
    """One grid point (its non-seed values) and the statistics of its runs."""

    params: dict[str, Any]
    experiment_ids: list[int]
    counts: dict[str, int]
    metrics: dict[str, MetricStats]
    best: bool


class SweepSummary(BaseModel):
    """A sweep in a listing: its grid and how many of its runs are in each status."""

    id: int
    name: str | None
    owner: str
    grid: dict[str, list[Any]]
    counts: dict[str, int]
    created_at: datetime


class SweepOut(SweepSummary):
    """A sweep with per-point statistics; `best` repeats the best point's params."""

    base_spec: dict[str, Any]
    points: list[SweepPoint]
    best: dict[str, Any] | None
    experiments: list[dict[str, Any]]


class SweepList(BaseModel):
    """Sweeps newest first; pass `next_before` as `before` for the next page."""

    items: list[SweepSummary]
    next_before: int | None
