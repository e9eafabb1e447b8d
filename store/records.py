"""The newer tables: uploaded datasets, each job's captured log lines, and webhooks with
their delivery log. On the one metadata of `store.base` (and loaded with `store.models`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from store.base import Base, TZDateTime, utcnow


class Dataset(Base):
    """A user's `.npz` dataset, stored in the artifact store under `storage_key`; a spec
    names it `"dataset": "user:<name>"`. Workers cache the file by its `checksum`."""

    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    checksum: Mapped[str] = mapped_column(String(64))  # SHA-256 of the .npz file, hex
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    storage_key: Mapped[str] = mapped_column(String(500))  # its path in the artifact store
    input_shape: Mapped[list[Any]] = mapped_column(JSON)  # one example, e.g. [28, 28]
    num_classes: Mapped[int] = mapped_column(Integer)
    train_examples: Mapped[int] = mapped_column(Integer)
    test_examples: Mapped[int] = mapped_column(Integer)
    class_names: Mapped[list[Any] | None] = mapped_column(JSON)
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(TZDateTime, default=utcnow)


class ExperimentLog(Base):
    """One captured log line (or traceback) of a job, in the order the worker wrote them;
    bounded per job by the worker (`EWC_JOB_LOG_MAX_LINES`, `EWC_JOB_LOG_MAX_BYTES`)."""

    __tablename__ = "experiment_logs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    level: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(TZDateTime, default=utcnow)

    __table_args__ = (Index("ix_experiment_logs_experiment_id_id", "experiment_id", "id"),)


class Webhook(Base):
    """A user's webhook: a URL called (JSON, HMAC-SHA256 signed with `secret`) when one of
    their experiments or sweeps ends."""

    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    secret: Mapped[str] = mapped_column(String(128))
    events: Mapped[list[Any]] = mapped_column(JSON)  # e.g. ["experiment.finished"]
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(TZDateTime, default=utcnow)


class WebhookDelivery(Base):
    """One event to deliver to one webhook, and how its delivery went (the owner's log)."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    webhook_id: Mapped[int] = mapped_column(
        ForeignKey("webhooks.id", ondelete="CASCADE"), index=True
    )
    event: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # delivered, failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(TZDateTime, index=True)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(TZDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(TZDateTime)
