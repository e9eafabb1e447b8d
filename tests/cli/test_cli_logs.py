"""A job's log followed over real HTTP (a uvicorn process whose streams last half a second,
so every follower reconnects with its last line id many times): the Python client's
`follow_logs` and `ewc logs ID -f` get every line the worker's handler wrote, once, in
order, and end with the job; `ewc logs ID` prints a finished log; errors are one line."""

from __future__ import annotations

import csv
import io
import json
import logging
import threading
import time

import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from cli.local_service import api_command
from cli.main import app as ewc_app
from client import Client
from common.settings import Settings, get_settings
from store.db import unit_of_work
from store.models import Experiment, JobStatus, User, utcnow
from tests.fixtures.dashboard import ADMIN_TOKEN
from tests.harness.processes import free_port, spawn, wait_healthy
from worker.joblog import JobLog

runner = CliRunner()
#: A server process per test: SQLite only (the TestClient tests cover PostgreSQL).
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
LINES = 30


@pytest.fixture
def server(session_factory, database_url, redis_url, tmp_path):
    """A real uvicorn process on the test database, streams capped at 0.5 s; (url, env)."""
    port = free_port()
    env = {
        "EWC_DATABASE_URL": database_url, "EWC_BROKER_URL": redis_url,
        "EWC_DATA_DIR": str(tmp_path / "data"), "EWC_ADMIN_TOKEN": ADMIN_TOKEN,
        "EWC_HOST": "127.0.0.1", "EWC_PORT": str(port), "PORT": str(port),
        "EWC_EVENTS_MAX_S": "0.5",
    }  # fmt: skip
    proc = spawn("api", api_command(Settings(host="127.0.0.1", port=port)), env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        yield url, env
    finally:
        proc.stop()


def cli(server, *args: str):
    url, env = server
    get_settings.cache_clear()
    try:
        return runner.invoke(ewc_app, [*args], env={**env, "EWC_URL": url, "EWC_TOKEN": ADMIN_TOKEN})
    finally:
        get_settings.cache_clear()


def play_worker(factory, exp: int, started: threading.Event) -> None:
    """What a worker does: its handler captures the job's records while it runs, the job
    ends, the handler writes the END line."""
    joblog = JobLog(exp, 1, factory, max_lines=1000, max_bytes=1 << 20, flush_s=0.1)
    joblog.start()
    root = logging.getLogger()
    root.addHandler(joblog)
    try:
        started.wait(30)
        for i in range(LINES):
            logging.getLogger("ewc.worker").warning("event=epoch experiment_id=%s n=%s", exp, i)
            time.sleep(0.05)
    finally:
        root.removeHandler(joblog)
    with unit_of_work(factory) as s:
        s.execute(update(Experiment).where(Experiment.id == exp)
                  .values(status=JobStatus.succeeded, finished_at=utcnow()))  # fmt: skip
    joblog.close_attempt("attempt 1 ended on w1: succeeded")


def test_following_a_running_job_over_http_gets_every_line_once_and_errors_are_one_line(
    server, session_factory, make_experiment
):
    with session_factory() as s:
        admin = s.scalar(select(User.id).where(User.name == "admin"))
    exp = make_experiment(admin, status=JobStatus.running, attempts=1)
    started = threading.Event()
    followed: list = []

    def follow() -> None:
        with Client(server[0], ADMIN_TOKEN) as client:
            followed.extend(client.follow_logs(exp))

    worker = threading.Thread(target=play_worker, args=(session_factory, exp, started))
    reader = threading.Thread(target=follow)
    worker.start()
    reader.start()
    started.set()
    try:
        r = cli(server, "logs", str(exp), "-f")
    finally:
        started.set()
        worker.join(60)
        reader.join(60)
    assert not reader.is_alive(), "follow_logs ends once the job's log is complete"
    expected = [f"ewc.worker event=epoch experiment_id={exp} n={i}" for i in range(LINES)]
    assert [x.message for x in followed] == [*expected, "attempt 1 ended on w1: succeeded"]
    assert [x.id for x in followed] == sorted({x.id for x in followed})
    assert r.exit_code == 0, r.output
    printed = r.stdout.splitlines()
    assert [line.split(" [attempt 1] ", 1)[1] for line in printed] == [
        *expected, "attempt 1 ended on w1: succeeded",
    ]  # fmt: skip
    assert printed[0].split()[1] == "WARNING" and printed[-1].split()[1] == "END"

    # Finished: `ewc logs` prints it whole (JSON lines with --json), after a line id.
    r = cli(server, "logs", str(exp), "--json")
    assert r.exit_code == 0, r.output
    r_json = r.stdout
    docs = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(docs) == LINES + 1 and set(docs[0]) == {"id", "attempt", "level", "time", "message"}
    r = cli(server, "logs", str(exp), "--after", str(docs[-2]["id"]))
    assert r.stdout.splitlines() == [printed[-1]]
    assert cli(server, "logs", str(exp), "-o", "json").stdout == r_json  # --json = -o json
    rows = list(csv.DictReader(io.StringIO(cli(server, "logs", str(exp), "-o", "csv").stdout)))
    assert [{k: str(v) for k, v in d.items()} for d in docs] == rows  # id,attempt,level,time,message
    with Client(server[0], ADMIN_TOKEN) as client:
        assert client.log_text(exp).splitlines() == printed
        page = client.logs(exp, limit=5)
        assert len(page.lines) == 5 and not page.finished and page.next_after == page.lines[-1].id

    # Errors are one line, exit 1 (one server for the whole file: it takes seconds to start).
    r = cli(server, "logs", "999")
    assert r.exit_code == 1 and "404" in r.output and "999" in r.output, r.output
    r = cli(server, "logs", "999", "-f")
    assert r.exit_code == 1 and "404" in r.output, r.output
