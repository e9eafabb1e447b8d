"""`ewc submit --wait` ends with the run's outcome, against a real API process: 0 when it
succeeded, 3 failed, 4 cancelled, 5 when `--timeout` ran out first (the run goes on); a
thread plays the worker on the real database (as tests/fixtures/events.py does)."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from sqlalchemy import select, update

from cli.jobs import EXIT_CODES, EXIT_TIMEOUT, exit_code
from store.db import unit_of_work
from store.models import Experiment, JobStatus
from tests.fixtures import cli_server
from tests.fixtures.cli_server import as_admin, invoke
from tests.fixtures.dashboard import ADMIN_TOKEN
from tests.fixtures.events import run_fake_job

server, admin, config_home = cli_server.server, cli_server.admin, cli_server.config_home
FLAGS = ("--dataset", "digits", "--dataset-update", "permute", "--splits", "2", "--epochs", "4")


def newest_queued(factory, after: int, deadline_s: float = 60) -> int:
    """The id of the first queued experiment newer than `after` (waits for the submit)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        with factory() as s:
            found = s.scalar(select(Experiment.id).where(
                Experiment.id > after, Experiment.status == JobStatus.queued))  # fmt: skip
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("no experiment was submitted")


def play(factory, url: str, outcome: str, after: int) -> threading.Thread:
    """A worker for the next submitted run: finish it as `outcome`."""

    def work() -> None:
        exp_id = newest_queued(factory, after)
        if outcome == "succeeded":
            ready = threading.Event()
            ready.set()
            run_fake_job(factory, exp_id, ready)
        elif outcome == "failed":
            with unit_of_work(factory) as s:
                s.execute(update(Experiment).where(Experiment.id == exp_id).values(
                    status=JobStatus.failed, error="RuntimeError: out of memory"))  # fmt: skip
        else:  # the real cancel of a queued run, through the API
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as h:
                assert h.post(f"/v1/experiments/{exp_id}/cancel").status_code == 200

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


def last_id(factory) -> int:
    with factory() as s:
        return s.scalar(select(Experiment.id).order_by(Experiment.id.desc()).limit(1)) or 0


def test_exit_code_of_many_runs():
    assert exit_code({"succeeded": 3, "failed": 0, "cancelled": 0}) == 0
    assert exit_code({"succeeded": 1, "failed": 1, "cancelled": 1}) == EXIT_CODES["failed"] == 3
    assert exit_code({"succeeded": 1, "cancelled": 2}) == EXIT_CODES["cancelled"] == 4


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_submit_wait_exits_with_the_outcome(server, admin, session_factory, config_home):
    env = as_admin(server)
    for outcome, code in (("succeeded", 0), ("failed", 3), ("cancelled", 4)):
        worker = play(session_factory, server, outcome, last_id(session_factory))
        r = invoke("submit", *FLAGS, "--wait", env=env)
        worker.join(30)
        assert r.exit_code == code, (outcome, r.output)
        if outcome == "failed":
            assert "out of memory" in r.stdout
        if outcome == "succeeded":
            assert "average accuracy (%)" in r.stdout  # the results follow

    before = last_id(session_factory)
    r = invoke("submit", *FLAGS, "--wait", "--timeout", "1", "--json", env=env)
    assert r.exit_code == EXIT_TIMEOUT, r.output
    assert "stopped waiting after 1 s" in r.stderr and '"status": "queued"' in r.stdout
    with session_factory() as s:  # the run goes on: still queued
        assert s.get(Experiment, before + 1).status == JobStatus.queued
