"""Fixtures for the job-running side: an empty schema on SQLite and PostgreSQL, users, jobs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from store.db import unit_of_work
from store.models import Experiment, JobStatus, utcnow


@pytest.fixture
def make_job(session_factory) -> Callable[..., int]:
    """Create an experiment row; `age_s` makes it older (created that many seconds ago)."""

    def create(
        owner_id: int,
        *,
        queue: str = "cpu",
        priority: int = 0,
        age_s: float = 0.0,
        status: JobStatus = JobStatus.queued,
        spec: dict | None = None,
        **extra,
    ) -> int:
        with unit_of_work(session_factory) as s:
            job = Experiment(
                owner_id=owner_id,
                spec=spec or {"dataset": "digits"},
                queue=queue,
                priority=priority,
                status=status,
                created_at=utcnow() - timedelta(seconds=age_s),
                **extra,
            )
            s.add(job)
            s.flush()
            return job.id

    return create
