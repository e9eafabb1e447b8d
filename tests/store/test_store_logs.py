"""`store.logs`: a job's captured lines appended, read after a cursor, counted, and when the
log counts as complete (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from store import logs
from store.db import unit_of_work
from store.logs import END_LEVEL, LogCount, LogLine
from store.models import Experiment, JobStatus, User, utcnow


def _owner(factory) -> int:
    with unit_of_work(factory) as s:
        user = User(name="alice")
        s.add(user)
        s.flush()
        return user.id


def _lines(*texts: str, level: str = "INFO") -> list[LogLine]:
    now = utcnow()
    return [LogLine(level, t, now) for t in texts]


def test_lines_are_read_in_order_after_a_cursor_and_counted(session_factory, make_experiment):
    owner = _owner(session_factory)
    exp, other = make_experiment(owner), make_experiment(owner)
    with unit_of_work(session_factory) as s:
        logs.append_lines(s, exp, 1, _lines("one", "two", "trois"))
        logs.append_lines(s, other, 1, _lines("elsewhere"))
        logs.append_lines(s, exp, 2, _lines("four", level="WARNING"))
        logs.append_lines(s, exp, 2, [])
    with session_factory() as s:
        rows = logs.read_lines(s, exp)
        assert [(r.attempt, r.level, r.message) for r in rows] == [
            (1, "INFO", "one"), (1, "INFO", "two"), (1, "INFO", "trois"), (2, "WARNING", "four"),
        ]  # fmt: skip
        assert [r.message for r in logs.read_lines(s, exp, rows[1].id)] == ["trois", "four"]
        assert [r.message for r in logs.read_lines(s, exp, 0, limit=2)] == ["one", "two"]
        assert logs.read_lines(s, exp, rows[-1].id) == []
        assert [r.message for r in logs.last_lines(s, exp, 2)] == ["trois", "four"]
        assert logs.count(s, exp) == LogCount(4, len("onetwotroisfour"))
        assert logs.count(s, 10**6) == LogCount(0, 0)
        assert logs.marks(s, [exp, other, 10**6]) == {
            exp: ("succeeded", rows[-1].id), other: ("succeeded", rows[-1].id - 1),
        }  # fmt: skip
        assert rows[0].created_at.tzinfo is not None


def test_a_log_is_complete_once_the_job_ended_and_its_last_attempt_wrote_end(
    session_factory, make_experiment
):
    owner = _owner(session_factory)
    running = make_experiment(owner, status=JobStatus.running, attempts=2)
    never_ran = make_experiment(owner, status=JobStatus.cancelled, attempts=0)
    with unit_of_work(session_factory) as s:
        logs.append_lines(s, running, 1, _lines("attempt 1 ended", level=END_LEVEL))
    with session_factory() as s:
        assert not logs.is_complete(s, s.get(Experiment, running))
        assert logs.is_complete(s, s.get(Experiment, never_ran))
    with unit_of_work(session_factory) as s:  # finished; attempt 2 has not written END yet
        s.execute(update(Experiment).where(Experiment.id == running)
                  .values(status=JobStatus.failed, finished_at=utcnow()))  # fmt: skip
    with session_factory() as s:
        exp = s.get(Experiment, running)
        assert not logs.is_complete(s, exp)
        later = utcnow() + timedelta(seconds=logs.SETTLE_S + 1)
        assert logs.is_complete(s, exp, now=later), "a worker that never wrote END"
    with unit_of_work(session_factory) as s:
        logs.append_lines(s, running, 2, _lines("attempt 2 ended", level=END_LEVEL))
    with session_factory() as s:
        assert logs.is_complete(s, s.get(Experiment, running))


def test_deleting_an_experiment_deletes_its_log(session_factory, make_experiment):
    owner = _owner(session_factory)
    exp = make_experiment(owner)
    with unit_of_work(session_factory) as s:
        logs.append_lines(s, exp, 1, _lines("x"))
    with unit_of_work(session_factory) as s:
        s.delete(s.get(Experiment, exp))
    with session_factory() as s:
        assert logs.count(s, exp) == LogCount(0, 0)
