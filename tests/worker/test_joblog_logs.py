"""`worker.joblog`: what a job's log keeps (its thread's records, other threads' lines that
name it, TensorFlow-style warnings, tracebacks), the cap and its marker, a database that is
away, and a real failing job's traceback (SQLite and PostgreSQL)."""

from __future__ import annotations

import logging
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy.orm import sessionmaker

from common.settings import Settings
from store import claims, logs
from store.db import make_engine, make_session_factory, unit_of_work
from store.models import Experiment, JobStatus
from tests.harness.processes import free_port
from worker.joblog import JobLog, capture
from worker.runner import checkpoint_dir, run_job

TINY = {"dataset": "digits", "model": "mlp", "dataset_update": "permute", "splits": 2,
        "epochs": 2, "seed": 0}  # fmt: skip


@pytest.fixture
def job(make_user, make_job) -> int:
    return make_job(make_user("alice"), status=JobStatus.running, attempts=1)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=database_url, heartbeat_s=0.05,
                    heartbeat_timeout_s=30, dataset_cache=tmp_path / "datasets")  # fmt: skip


@pytest.fixture
def ewc_info():
    """This project's loggers at INFO (the worker's default level) for the test."""
    logger = logging.getLogger("ewc")
    before = logger.level
    logger.setLevel(logging.INFO)
    yield
    logger.setLevel(before)


def stored(factory, experiment_id: int) -> list[tuple[int, str, str]]:
    with factory() as s:
        return [(r.attempt, r.level, r.message) for r in logs.read_lines(s, experiment_id)]


def handler(factory, experiment_id: int, **kwargs) -> JobLog:
    values = {"max_lines": 1000, "max_bytes": 1 << 20, "flush_s": 0.05, **kwargs}
    joblog = JobLog(experiment_id, 1, factory, **values)
    joblog.start()
    logging.getLogger().addHandler(joblog)
    return joblog


def close(joblog: JobLog, ending: str = "attempt 1 ended") -> None:
    logging.getLogger().removeHandler(joblog)
    joblog.close_attempt(ending)


def test_the_job_thread_and_lines_naming_the_job_are_kept_in_order(
    session_factory, job, ewc_info, settings
):
    log = logging.getLogger("ewc.worker")

    def elsewhere() -> None:
        log.warning("event=heartbeat_failed experiment_id=%s", job)  # names the job: kept
        log.warning("event=presence worker=w1")  # the worker's, not the job's
        log.warning("event=heartbeat_failed experiment_id=%s0", job)  # another job

    with session_factory() as s:
        row = s.get(Experiment, job)
    shown = warnings.showwarning
    with capture(row, settings=settings, sessions=session_factory) as joblog:
        log.info("event=epoch experiment_id=%s task=1", job)
        logging.getLogger("tensorflow").info("chatter")  # another library below WARNING: no
        logging.getLogger("tensorflow").warning("retracing")
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.warn("a keras warning", UserWarning, stacklevel=1)
        thread = threading.Thread(target=elsewhere)
        thread.start()
        thread.join()
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("event=job_crashed experiment_id=%s", job)
        joblog.close_attempt("attempt 1 ended")
    assert warnings.showwarning is shown and joblog not in logging.getLogger().handlers
    log.warning("event=after experiment_id=%s", job)  # the job is over: not kept
    lines = stored(session_factory, job)
    assert [(a, lv) for a, lv, _ in lines] == [
        (1, "INFO"), (1, "WARNING"), (1, "WARNING"), (1, "WARNING"), (1, "ERROR"), (1, "END"),
    ]  # fmt: skip
    messages = [m for _, _, m in lines]
    assert messages[0] == f"ewc.worker event=epoch experiment_id={job} task=1"
    assert messages[1] == "tensorflow retracing"
    assert messages[2].startswith("py.warnings ") and "UserWarning: a keras warning" in messages[2]
    assert messages[3] == f"ewc.worker event=heartbeat_failed experiment_id={job}"
    crash = messages[4]
    assert crash.startswith(f"ewc.worker event=job_crashed experiment_id={job}\nTraceback")
    assert crash.rstrip().endswith("ValueError: boom")
    assert messages[5] == "attempt 1 ended"


def test_past_the_cap_lines_are_counted_and_one_marker_ends_the_log(session_factory, job):
    joblog = handler(session_factory, job, max_lines=10)
    log = logging.getLogger("ewc.worker")
    for i in range(25):
        log.warning("line %s", i)
    try:
        raise RuntimeError("late failure")
    except RuntimeError:
        log.exception("event=job_crashed")  # kept past the cap: a traceback
    close(joblog)
    lines = stored(session_factory, job)
    assert [m for _, _, m in lines[:10]] == [f"ewc.worker line {i}" for i in range(10)]
    assert "RuntimeError: late failure" in lines[10][2]
    assert lines[11][1:] == ("WARNING", lines[11][2])
    assert lines[11][2].startswith("... 15 more lines not kept")
    assert lines[12][1] == "END" and len(lines) == 13
    assert joblog.not_kept == 15


def test_the_byte_cap_counts_what_earlier_attempts_stored(session_factory, job):
    with unit_of_work(session_factory) as s:
        logs.append_lines(s, job, 1, [logs.LogLine("INFO", "x" * 1500, logs.utcnow())])
    with session_factory() as s:
        before = logs.count(s, job)
    joblog = handler(session_factory, job, max_bytes=2048, stored=before)
    log = logging.getLogger("ewc.worker")
    log.warning("y" * 400)  # 1500 + 411 bytes: kept
    log.warning("z" * 400)  # past 2048: counted
    close(joblog)
    messages = [m for _, _, m in stored(session_factory, job)]
    assert messages[1] == "ewc.worker " + "y" * 400
    assert messages[2].startswith("... 1 more lines not kept") and len(messages) == 4


def test_a_database_that_is_away_drops_the_lines_and_never_fails_the_job(caplog):
    # Nothing listens on the port: every write is refused, as by a stopped PostgreSQL.
    engine = make_engine(f"postgresql+psycopg://ewc@127.0.0.1:{free_port()}/ewc")
    away: sessionmaker = make_session_factory(engine)
    joblog = handler(away, 1, retry_s=0.3)
    for i in range(5):
        logging.getLogger("ewc.worker").warning("line %s", i)
    close(joblog)  # returns: the job's ending is not held up
    assert joblog.dropped == 6  # the 5 lines and the END line, kept in memory until the end
    dropped = [r.getMessage() for r in caplog.records if "job_log_dropped" in r.getMessage()]
    assert len(dropped) == 1 and "lines=6" in dropped[0]
    engine.dispose()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_failing_job_stores_its_traceback_and_keeps_its_error_one_line(
    session_factory, make_user, make_job, settings
):
    job_id = make_job(make_user("bob"), spec=TINY)
    stale = checkpoint_dir(settings, job_id) / "task-1"  # another experiment's checkpoint
    stale.mkdir(parents=True)
    (stale / "history.json").write_text('{"task": 1, "spec": {"dataset": "mnist"}}')
    np.savez(stale / "state.npz", x=np.zeros(1))
    with unit_of_work(session_factory) as s:
        job = claims.claim_next_job(s, ["cpu"], "w1", 30, 3)
    outcome = run_job(job, worker="w1", settings=settings, sessions=session_factory, device="CPU")
    assert outcome.status == JobStatus.failed
    with session_factory() as s:
        error = s.get(Experiment, job_id).error
    assert "\n" not in error and error.startswith("CheckpointMismatch: ")
    lines = stored(session_factory, job_id)
    crash = [m for _, lv, m in lines if lv == "ERROR"]
    assert len(crash) == 1 and "Traceback (most recent call last)" in crash[0]
    assert "CheckpointMismatch" in crash[0].splitlines()[-1]
    assert lines[-1][:2] == (1, "END")
    assert lines[-1][2] == f"attempt 1 ended on w1: failed: {error}"


def test_a_resumed_job_logs_as_its_new_attempt_within_the_same_cap(
    session_factory, make_user, make_job, settings
):
    job_id = make_job(make_user("carol"), status=JobStatus.running, attempts=2)
    with unit_of_work(session_factory) as s:  # what attempt 1 left, on another host
        logs.append_lines(s, job_id, 1, [logs.LogLine("INFO", "first try", logs.utcnow())] * 9)
    with session_factory() as s:
        row = s.get(Experiment, job_id)
    capped = settings.model_copy(update={"job_log_max_lines": 10})
    with capture(row, settings=capped, sessions=session_factory) as joblog:
        logging.getLogger("ewc.worker").warning("resumed from task 2")
        logging.getLogger("ewc.worker").warning("one too many")
        joblog.close_attempt("attempt 2 ended on w2: succeeded")
    lines = stored(session_factory, job_id)
    assert [a for a, _, _ in lines] == [1] * 9 + [2, 2, 2]
    assert [m for _, _, m in lines[9:]] == [
        "ewc.worker resumed from task 2",
        lines[10][2], "attempt 2 ended on w2: succeeded",
    ]  # fmt: skip
    assert lines[10][2].startswith("... 1 more lines not kept")
