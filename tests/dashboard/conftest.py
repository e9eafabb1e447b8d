"""Fixtures for the dashboard tests: an empty schema on SQLite and PostgreSQL, users,
finished experiments with metrics, and result documents."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from store.db import unit_of_work
from store.models import EpochMetric, Experiment, JobStatus, TaskResult, User, utcnow


def sample_result(num_tasks: int = 3, epochs_per_task: int = 2) -> dict[str, Any]:
    """A hand-made result document (the shape of docs/architecture.md; fractions)."""
    epochs, matrix, n = [], [], 0
    for task in range(1, num_tasks + 1):
        for e in range(1, epochs_per_task + 1):
            n += 1
            acc = [
                round(0.9 - 0.05 * (task - j) if j <= task else 0.1, 4)
                for j in range(1, num_tasks + 1)
            ]
            epochs.append(
                {"task": task, "epoch": n, "task_epoch": e, "loss": 1.0 / n, "val_accuracy": acc}
            )
        matrix.append(
            [
                round(0.92 - 0.04 * (task - j) if j <= task else 0.1, 4)
                for j in range(1, num_tasks + 1)
            ]
        )
    return {
        "spec": {"dataset": "digits", "splits": num_tasks},
        "epochs": epochs,
        "accuracy_matrix": matrix,
        "summary": {"average_accuracy": 0.88, "bwt": -0.04, "forgetting": 0.04},
    }


@pytest.fixture
def make_experiment(session_factory) -> Callable[..., int]:
    """Create an experiment row (optionally with its metric rows); returns its id."""

    def create(
        owner_id: int,
        *,
        spec: dict | None = None,
        status: JobStatus = JobStatus.succeeded,
        summary: dict | None = None,
        result: dict | None = None,
        finished_days_ago: float | None = None,
        **extra,
    ) -> int:
        with unit_of_work(session_factory) as s:
            finished = status in (JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled)
            exp = Experiment(
                owner_id=owner_id,
                spec=spec or {"dataset": "digits"},
                status=status,
                summary=summary if summary is not None else (result or {}).get("summary"),
                finished_at=(utcnow() - timedelta(days=finished_days_ago or 0))
                if finished
                else None,
                **extra,
            )
            s.add(exp)
            s.flush()
            for row in (result or {}).get("epochs", []):
                s.add(
                    EpochMetric(
                        experiment_id=exp.id,
                        task=row["task"],
                        epoch=row["epoch"],
                        task_epoch=row.get("task_epoch", 1),
                        loss=row["loss"],
                        val_accuracy=row["val_accuracy"],
                        train_s=0.1,
                        eval_s=0.01,
                    )
                )
            for i, row in enumerate((result or {}).get("accuracy_matrix", []), start=1):
                s.add(TaskResult(experiment_id=exp.id, task=i, test_accuracy=row))
            return exp.id

    return create


ADMIN_TOKEN = "dashboard-test-admin-token"


@pytest.fixture
def app_settings(database_url: str, redis_url: str, tmp_path):
    """Settings of a test API: the test database, a real broker, data under tmp_path."""
    from common.settings import Settings

    return Settings(
        database_url=database_url,
        broker_url=redis_url,
        data_dir=tmp_path / "data",
        admin_token=ADMIN_TOKEN,
    )


@pytest.fixture
def api(session_factory, app_settings):
    """A TestClient of the real app (lifespan run) with the admin's bearer token set."""
    from fastapi.testclient import TestClient

    from api.app import create_app

    app = create_app(app_settings)
    app.state.events_poll_s = 0.05
    with TestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
        yield client


@pytest.fixture
def admin_id(api, session_factory) -> int:
    """The id of the admin user the app created at start-up."""
    from sqlalchemy import select

    with session_factory() as s:
        return s.scalar(select(User.id).where(User.name == "admin"))


# The dashboard as a browser uses it -----------------------------------------------------

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(client, path: str = "/ui/new") -> str:
    """The form token on the page at `path` (the session's, or the login page's)."""
    return CSRF.search(client.get(path).text).group(1)


def log_in(client, token: str = ADMIN_TOKEN, next_: str = "/ui/"):
    """Post the login form as a browser would (the login page's token included)."""
    return client.post("/ui/login", data={"token": token, "next": next_,
                                          "csrf_token": csrf_of(client, "/ui/login")},
                       follow_redirects=False)  # fmt: skip


def new_form(client, **fields: str) -> dict[str, str]:
    """What the new-experiment page posts: its defaults overlaid with `fields`."""
    from api.dashboard_forms import FORM_DEFAULTS

    return {**FORM_DEFAULTS, "csrf_token": csrf_of(client), **fields}


def sweep_form(client, **fields: str) -> dict[str, str]:
    return {"name": "", "base": "{}", "grid": "", "csrf_token": csrf_of(client, "/ui/sweeps"),
            **fields}  # fmt: skip


@pytest.fixture
def ui(api):
    """The app's client logged in through the login form (session cookie, no bearer header)."""
    del api.headers["Authorization"]
    r = log_in(api)
    assert r.status_code == 303 and r.headers["location"] == "/ui/"
    cookie = r.headers["set-cookie"].lower()
    assert "ewc_session=" in cookie and "httponly" in cookie and "samesite=lax" in cookie
    assert ADMIN_TOKEN.lower() not in cookie, "the browser never holds the API token"
    return api
