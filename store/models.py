"""SQLAlchemy 2 models: the tables of EWC Server.

The database row of an experiment is the truth about a job; the broker only carries
wake-ups. Metrics are stored as they happen: one row per epoch, one per finished task.
Lists of accuracies (one per task) are JSON columns, portable between SQLite and PostgreSQL.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from store.base import NAMING_CONVENTION, Base, TZDateTime, UTCDateTime, utcnow
from store.vocabulary import JobStatus

#: The summary metrics an experiment row also holds as float columns of the same names.
SUMMARY_METRICS: tuple[str, ...] = ("average_accuracy", "bwt", "fwt", "forgetting")


def summary_metric_values(summary: dict[str, Any] | None) -> dict[str, float | None]:
    """{metric: value} of SUMMARY_METRICS for those columns: a finite number of the summary,
    else None (absent, null, undefined for one task, or not a number)."""
    values: dict[str, float | None] = {}
    for name in SUMMARY_METRICS:
        value = (summary or {}).get(name)
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        values[name] = float(value) if ok and math.isfinite(value) else None
    return values


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(TZDateTime, default=utcnow)
    # When a worker last claimed one of this user's jobs: fair share serves the user who
    # waited longest first (round robin) among users running equally many jobs.
    last_claimed_at: Mapped[datetime | None] = mapped_column(TZDateTime)

    tokens: Mapped[list[ApiToken]] = relationship(back_populates="user")


class ApiToken(Base):
    """A bearer token, stored only as its SHA-256 hash."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))  # first characters, to recognise it
    created_at: Mapped[datetime] = mapped_column(TZDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(TZDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(TZDateTime)

    user: Mapped[User] = relationship(back_populates="tokens")


class Experiment(Base):
    """One job: a spec, its scheduling state, its progress and its summary."""

    __tablename__ = "experiments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    sweep_id: Mapped[int | None] = mapped_column(
        ForeignKey("sweeps.id", ondelete="SET NULL"), index=True
    )
    name: Mapped[str | None] = mapped_column(String(200))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[JobStatus] = mapped_column(
        Enum(JobStatus, native_enum=False, length=16, validate_strings=True),
        default=JobStatus.queued,
    )
    queue: Mapped[str] = mapped_column(String(16), default="cpu")
    priority: Mapped[int] = mapped_column(Integer, default=0)

    created_at: Mapped[datetime] = mapped_column(TZDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(TZDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(TZDateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(TZDateTime)
    wakeup_sent_at: Mapped[datetime | None] = mapped_column(TZDateTime)

    worker: Mapped[str | None] = mapped_column(String(200))  # host/pid of the runner
    device: Mapped[str | None] = mapped_column(String(200))  # e.g. "GPU:0 (NVIDIA A100)"
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)

    # Progress: task k of n, epoch e of m (1-based; 0 before the first one ends).
    num_tasks: Mapped[int] = mapped_column(Integer, default=0)
    total_epochs: Mapped[int] = mapped_column(Integer, default=0)
    current_task: Mapped[int] = mapped_column(Integer, default=0)
    current_epoch: Mapped[int] = mapped_column(Integer, default=0)

    summary: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # The summary's metrics again as indexed columns, so a listing filters and sorts on them
    # in SQL (`store.run_search`); set from `summary` on every write of it.
    average_accuracy: Mapped[float | None] = mapped_column(Float, index=True)
    bwt: Mapped[float | None] = mapped_column(Float, index=True)
    fwt: Mapped[float | None] = mapped_column(Float, index=True)
    forgetting: Mapped[float | None] = mapped_column(Float, index=True)
    timings: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    versions: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)

    # Managing runs after the fact: the run this one re-ran, free-text notes, archiving
    # (hidden from listings, not deleted) and the project it belongs to (default: the
    # owner's name, set on submission).
    # A plain id, not a foreign key: the original may be purged later (and SQLite cannot
    # drop a column that holds a foreign key, which would break the downgrade).
    rerun_of: Mapped[int | None] = mapped_column(Integer, index=True)
    notes: Mapped[str | None] = mapped_column(Text)
    archived_at: Mapped[datetime | None] = mapped_column(TZDateTime, index=True)
    project: Mapped[str | None] = mapped_column(String(100), index=True)

    owner: Mapped[User] = relationship()
    tags: Mapped[list[ExperimentTag]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="ExperimentTag.tag"
    )

    __table_args__ = (
        Index("ix_experiments_claim", "status", "queue", "priority", "created_at"),
        Index("ix_experiments_owner_status", "owner_id", "status"),
    )

    @validates("summary")
    def _set_summary_metrics(self, _key: str, summary: dict[str, Any] | None):
        for name, value in summary_metric_values(summary).items():
            setattr(self, name, value)
        return summary

    @property
    def tag_names(self) -> list[str]:
        return [t.tag for t in self.tags]

    @property
    def progress(self) -> dict[str, int]:
        """{"task", "num_tasks", "epoch", "total_epochs"}: the one progress shape of every
        answer (the v1 body, the event stream, the comparison, the dashboard's updates)."""
        return {
            "task": self.current_task,
            "num_tasks": self.num_tasks,
            "epoch": self.current_epoch,
            "total_epochs": self.total_epochs,
        }


class ExperimentTag(Base):
    __tablename__ = "experiment_tags"

    experiment_id: Mapped[int] = mapped_column(
        ForeignKey("experiments.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)


class EpochMetric(Base):
    """One training epoch: loss and the validation accuracy on every task."""

    __tablename__ = "epoch_metrics"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    task: Mapped[int] = mapped_column(Integer)
    epoch: Mapped[int] = mapped_column(Integer)  # across the whole run, 1-based
    task_epoch: Mapped[int] = mapped_column(Integer)
    loss: Mapped[float] = mapped_column(Float)
    val_accuracy: Mapped[list[Any]] = mapped_column(JSON)
    train_s: Mapped[float] = mapped_column(Float)
    eval_s: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(TZDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("experiment_id", "epoch"),)


class TaskResult(Base):
    """One finished task: its row of the test accuracy matrix."""

    __tablename__ = "task_results"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    task: Mapped[int] = mapped_column(Integer)
    test_accuracy: Mapped[list[Any]] = mapped_column(JSON)
    fisher_s: Mapped[float | None] = mapped_column(Float)
    frozen_fraction: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(TZDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("experiment_id", "task"),)


class Sweep(Base):
    """A grid of experiments over one base spec."""

    __tablename__ = "sweeps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str | None] = mapped_column(String(200))
    base_spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    grid: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(TZDateTime, default=utcnow)


class Worker(Base):
    """A live `ewc worker` process, as it last reported itself (its presence heartbeat).

    Written by the worker every `heartbeat_s` seconds, busy or idle; a row whose
    `last_heartbeat` is older than `heartbeat_timeout_s` belongs to a dead (or cut-off)
    worker. A worker that stops cleanly deletes its row.
    """

    __tablename__ = "workers"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)  # host:pid:random
    hostname: Mapped[str] = mapped_column(String(200))
    queues: Mapped[str] = mapped_column(String(64))  # "cpu", "gpu" or "cpu,gpu"
    device: Mapped[str] = mapped_column(String(200))  # "CPU" or "GPU:0 (<name>)"
    started_at: Mapped[datetime] = mapped_column(TZDateTime, default=utcnow)
    last_heartbeat: Mapped[datetime] = mapped_column(TZDateTime, default=utcnow, index=True)
    experiment_id: Mapped[int | None] = mapped_column(Integer)  # the job it runs, if any
    jobs_run: Mapped[int] = mapped_column(Integer, default=0)


class BrowserSession(Base):
    """A dashboard login: the browser's cookie holds a random session id, stored here only as
    its SHA-256 hash, with the form token (CSRF) of that session and when it expires.

    Logging out deletes the row; revoking the token it was opened with ends it too.
    """

    __tablename__ = "browser_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_id: Mapped[int] = mapped_column(
        ForeignKey("api_tokens.id", ondelete="CASCADE"), index=True
    )
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(TZDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(TZDateTime, index=True)

    user: Mapped[User] = relationship()


# The newer tables (datasets, job logs, webhooks) live in `store.records`; importing it here
# puts them on the one metadata wherever the models are loaded (migrations, the tests).
from store.records import (
    Dataset,
    ExperimentLog,
    Webhook,
    WebhookDelivery,
)

__all__ = [
    "NAMING_CONVENTION",
    "SUMMARY_METRICS",
    "ApiToken",
    "Base",
    "BrowserSession",
    "Dataset",
    "EpochMetric",
    "Experiment",
    "ExperimentLog",
    "ExperimentTag",
    "JobStatus",
    "Sweep",
    "TZDateTime",
    "TaskResult",
    "UTCDateTime",
    "User",
    "Webhook",
    "WebhookDelivery",
    "Worker",
    "summary_metric_values",
    "utcnow",
]
