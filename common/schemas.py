"""The v1 API's bodies (pydantic), shared by the API and the Python client (`client/`).

Pure pydantic: no FastAPI, no SQLAlchemy, no TensorFlow, so a notebook that installs the
client gets the very models the server answers with. Requests use
`continual_core.spec.ExperimentSpec`; the API builds these from stored rows
(`api.schemas.experiment_out`).

Stored documents (a spec, a summary, timings) are typed in the OpenAPI document but kept as
they were stored at run time: a spec stays the JSON it was submitted as (`StoredSpec`), and
`Summary`/`Timings` keep their unknown keys and leave out the ones the row lacks
(`StoredDocument`), so no answer changes shape.

Accuracies are fractions in [0, 1]; times are seconds; datetimes are ISO 8601 in UTC.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    WithJsonSchema,
    model_serializer,
)

from common.schemas_sweeps import BestTest
from store.vocabulary import JobStatus

#: Where a document names the `ExperimentSpec` schema; the OpenAPI document
#: (`api.openapi`) turns it into a reference to that component.
SPEC_SCHEMA_MARK = "x-ewc-schema"
#: A spec as stored: the JSON object of an `ExperimentSpec` (documented as one).
StoredSpec = Annotated[
    dict[str, Any],
    WithJsonSchema({"type": "object", "title": "ExperimentSpec", SPEC_SCHEMA_MARK: "ExperimentSpec"}),
]
#: Dotted spec paths → the values to try.
Grid = Annotated[
    dict[str, list[Any]],
    WithJsonSchema(
        {"type": "object", "additionalProperties": {"type": "array", "items": {}},
         "title": "Grid", "description": 'e.g. {"ewc.lambda": [1, 10, 100], "seed": [0, 1, 2]}'}
    ),
]  # fmt: skip


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


class StoredDocument(BaseModel):
    """A JSON document as a row stores it: known keys typed, unknown keys kept, and keys
    the row does not have left out of the answer (never sent as null)."""

    model_config = ConfigDict(extra="allow")

    @model_serializer(mode="wrap")
    def _as_stored(self, handler: SerializerFunctionWrapHandler):  # the model's own schema
        data = handler(self)
        keep = self.model_fields_set | set(self.model_extra or {})
        return {k: v for k, v in data.items() if k in keep}

    def get(self, key: str, default: Any = None) -> Any:
        """The stored value of `key` (a known or unknown one), as a dict's `get`."""
        return self.model_dump().get(key, default)


class Summary(StoredDocument):
    """The run's continual-learning metrics (fractions; None where undefined)."""

    average_accuracy: float | None = Field(default=None, description="Mean of the last row.")
    bwt: float | None = Field(default=None, description="Backward transfer.")
    fwt: float | None = Field(default=None, description="Forward transfer.")
    forgetting: float | None = None


class Timings(StoredDocument):
    """Seconds spent: per training epoch, per evaluation, per Fisher estimate, in total."""

    train_epoch_s: list[float | None] | None = None
    eval_s: list[float | None] | None = None
    fisher_s: list[float | None] | None = None
    total_s: float | None = None


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
    spec: StoredSpec
    queue: str
    priority: int
    progress: Progress
    summary: Summary | None
    error: str | None
    timings: Timings | None
    device: str | None
    worker: str | None
    attempts: int
    cancel_requested: bool
    sweep_id: int | None = None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    project: str | None = Field(default=None, description="Its project (default: owner's name).")
    rerun_of: int | None = Field(default=None, description="The experiment this one re-ran.")
    notes: str | None = None
    archived_at: datetime | None = Field(default=None, description="Archived (hidden) since.")


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

    spec: StoredSpec
    epochs: list[EpochRow]
    accuracy_matrix: list[list[float | None]]
    summary: Summary | None
    timings: Timings
    fisher: str | None
    versions: dict[str, Any]


class ExperimentExport(BaseModel):
    """`export.json`: the experiment and its metrics document in one file."""

    experiment: ExperimentOut
    metrics: Metrics


class CompareRow(BaseModel):
    """One experiment of a comparison."""

    id: int
    name: str | None
    owner: str
    status: JobStatus
    tags: list[str]
    summary: Summary | None
    progress: Progress


class Comparison(BaseModel):
    """Experiments side by side: the spec fields that differ ({field: {id: value}}) and
    those all share ({field: value})."""

    experiments: list[CompareRow]
    spec_differences: dict[str, dict[str, Any]]
    common_spec: dict[str, Any]


class ArtifactOut(BaseModel):
    """One downloadable artifact; folders (checkpoints, tensorboard) come as `<name>.zip`."""

    path: str
    kind: str
    size: int
    files: int
    modified: datetime
    url: str


class ArtifactList(BaseModel):
    """Every artifact of an experiment (empty before its first checkpoint)."""

    experiment_id: int
    items: list[ArtifactOut]


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
    grid: Grid
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


class SweepRun(BaseModel):
    """One experiment of a sweep: its grid values and summary."""

    model_config = ConfigDict(use_enum_values=True)  # `status` is its text, as stored

    id: int
    name: str | None
    status: JobStatus
    params: dict[str, Any]
    summary: Summary | None


class SweepSummary(BaseModel):
    """A sweep in a listing: its grid and how many of its runs are in each status."""

    id: int
    name: str | None
    owner: str
    grid: Grid
    counts: dict[str, int]
    created_at: datetime


class SweepOut(SweepSummary):
    """A sweep with per-point statistics; `best` repeats the best point's params (None
    unless it beats the runner-up by more than the noise: `best_reason` says why)."""

    base_spec: StoredSpec
    points: list[SweepPoint]
    best: dict[str, Any] | None
    best_reason: str = ""
    best_test: BestTest | None = None
    experiments: list[SweepRun]


class SweepList(BaseModel):
    """Sweeps newest first; pass `next_cursor` back as `cursor` for the next page."""

    items: list[SweepSummary]
    next_cursor: str | None
    next_before: int | None = Field(
        default=None,
        deprecated=True,
        description="Deprecated: the last id of this page, for the old `before` parameter; "
        "use `next_cursor`.",
    )


# Tables of many runs ----------------------------------------------------------------------


class TableRow(BaseModel):
    """One run of `GET /v1/experiments/table` as a flat row: these columns, then one
    `params.<dotted spec path>` per spec value of the page's runs (null where a run has
    none) and `metrics.<summary key>` (average_accuracy, bwt, fwt, forgetting; null until
    known). Times are ISO 8601 in UTC; `duration_s` is finished − started."""

    model_config = ConfigDict(extra="allow")

    id: int
    name: str | None
    owner: str
    project: str | None = None
    status: JobStatus
    sweep_id: int | None
    tags: list[str]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_s: float | None
