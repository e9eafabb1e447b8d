"""Fixtures for the job-running side: an empty schema on SQLite and PostgreSQL, users, jobs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from store.db import make_engine, make_session_factory, unit_of_work
from store.models import Base, Experiment, JobStatus, User, utcnow


@pytest.fixture
def session_factory(database_url: str) -> Iterator[sessionmaker[Session]]:
    """A session factory over a freshly created schema (SQLite file or PostgreSQL)."""
    engine = make_engine(database_url)
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    try:
        yield make_session_factory(engine)
    finally:
        engine.dispose()


@pytest.fixture
def make_user(session_factory) -> Callable[[str], int]:
    """Create a user by name; returns its id."""

    def create(name: str) -> int:
        with unit_of_work(session_factory) as s:
            user = User(name=name)
            s.add(user)
            s.flush()
            return user.id

    return create


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
