"""`worker.retry.retry`: the one retry loop behind every wait of the worker for its database.

The pauses are scaled down (centiseconds) so the schedule itself is checked, not guessed;
the last test meets a real database that is away (nothing listens on the port).
"""

from __future__ import annotations

import itertools
import socket
import threading
import time

import pytest
import sqlalchemy as sa

from worker.retry import DATABASE_AWAY, MAX_ERROR_CHARS, one_line, retry


class Away(sa.exc.OperationalError):
    def __init__(self) -> None:
        super().__init__("SELECT 1", {}, Exception("connection refused"))


def failing(times: int, error: type[Exception] = Away, value: str = "done"):
    """A call that raises `error` its first `times` calls, then returns `value`."""
    calls = []

    def call() -> str:
        calls.append(time.monotonic())
        if len(calls) <= times:
            raise error()
        return value

    return call, calls


def recorder():
    seen: list[tuple[str, int, float, bool]] = []
    return seen, lambda exc, tries, pause, retrying: seen.append(
        (type(exc).__name__, tries, pause, retrying)
    )


def test_a_database_away_is_waited_for_with_growing_capped_pauses():
    call, calls = failing(4)
    seen, on_failure = recorder()
    assert retry(
        call, retry_on=DATABASE_AWAY, budget_s=5, first_pause_s=0.01, max_pause_s=0.04,
        on_failure=on_failure,
    ) == "done"  # fmt: skip
    assert len(calls) == 5
    assert [(tries, pause, retrying) for _, tries, pause, retrying in seen] == [
        (1, 0.01, True), (2, 0.02, True), (3, 0.04, True), (4, 0.04, True),
    ]  # fmt: skip
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert all(gap >= pause for gap, (_, _, pause, _) in zip(gaps, seen, strict=True)), gaps


def test_it_gives_up_before_a_pause_that_would_end_past_the_budget():
    call, calls = failing(100)
    seen, on_failure = recorder()
    started = time.monotonic()
    with pytest.raises(Away):
        retry(
            call, retry_on=DATABASE_AWAY, budget_s=0.1, first_pause_s=0.04, growth=1.0,
            on_failure=on_failure,
        )  # fmt: skip
    assert time.monotonic() - started < 0.1 + 0.04  # never slept past the budget
    assert 2 <= len(calls) <= 3  # 0.04 + 0.04 fit in 0.1 s; a third pause does not
    assert seen[-1][3] is False and all(r for *_, r in seen[:-1])


def test_another_error_is_raised_at_once_unless_min_tries_asks_for_more():
    call, calls = failing(100, error=ValueError)
    seen, on_failure = recorder()
    with pytest.raises(ValueError):
        retry(call, retry_on=DATABASE_AWAY, budget_s=60, on_failure=on_failure)
    assert len(calls) == 1 and seen == [("ValueError", 1, 0.5, False)]

    call, calls = failing(100, error=ValueError)
    with pytest.raises(ValueError):
        retry(call, retry_on=DATABASE_AWAY, budget_s=60, first_pause_s=0.01, min_tries=3)
    assert len(calls) == 3

    call, calls = failing(2, error=ValueError)
    assert retry(call, retry_on=DATABASE_AWAY, budget_s=0, first_pause_s=0.01, min_tries=3) == "done"


def test_min_tries_holds_even_when_the_budget_is_spent():
    call, calls = failing(100)
    with pytest.raises(Away):
        retry(call, retry_on=DATABASE_AWAY, budget_s=0, first_pause_s=0.01, min_tries=3)
    assert len(calls) == 3


def test_an_interrupt_cuts_the_pause_short_and_the_next_failure_is_raised():
    stop = threading.Event()
    call, calls = failing(100)
    threading.Timer(0.2, stop.set).start()
    started = time.monotonic()
    with pytest.raises(Away):
        retry(call, retry_on=DATABASE_AWAY, budget_s=60, first_pause_s=30, interrupt=stop)
    assert time.monotonic() - started < 10  # not the 30 s pause
    assert len(calls) == 2  # tried once more after the interrupt, then gave up

    call, calls = failing(100)
    with pytest.raises(Away):  # already set: no waiting at all
        retry(call, retry_on=DATABASE_AWAY, budget_s=60, interrupt=stop)
    assert len(calls) == 1


def test_a_real_database_that_is_away_counts_as_away():
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    engine = sa.create_engine(
        f"postgresql+psycopg://postgres@127.0.0.1:{port}/none",
        connect_args={"connect_timeout": 2},
    )

    def query() -> int:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT 1")).scalar_one()

    seen, on_failure = recorder()
    try:
        with pytest.raises(DATABASE_AWAY):
            retry(
                query, retry_on=DATABASE_AWAY, budget_s=0.05, first_pause_s=0.02,
                on_failure=on_failure,
            )  # fmt: skip
    finally:
        engine.dispose()
    assert seen and seen[0][0] == "OperationalError" and seen[0][3] is True


def test_one_line_keeps_an_error_to_one_bounded_line():
    assert one_line(ValueError("a\n  b\tc")) == "ValueError: a b c"
    assert one_line(KeyError()) == "KeyError"
    long = one_line(RuntimeError("x" * 5000))
    assert len(long) == MAX_ERROR_CHARS and long.endswith("…")
