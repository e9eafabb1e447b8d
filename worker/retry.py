"""The one retry loop of the worker: try a call again while it fails, within a time budget.

Every wait of the worker for a database that is briefly away goes through `retry`: a
metric write (`worker.callback`), a job's final status and its hand-back at shutdown
(`worker.outcome`). Each caller says which errors are worth waiting for (`DATABASE_AWAY`),
for how long, and whether a shutdown cuts the wait short. `one_line` is how those callers
write an error into a log line or a job's `error`.

The loop is tenacity's (`Retrying`): exponential pauses, a time budget checked before each
pause, a minimum number of tries for any error, and the pause taken with `interrupt.wait`
so that a worker shutting down does not wait out a database its host is stopping too.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from tenacity import RetryCallState, Retrying, wait_exponential

__all__ = ["DATABASE_AWAY", "MAX_ERROR_CHARS", "OnFailure", "one_line", "retry"]

T = TypeVar("T")

#: Errors that mean "the database cannot be reached right now" (retried, not fatal).
DATABASE_AWAY = (OperationalError, InterfaceError, PoolTimeoutError)
#: Longest error text stored on a job (the log has the rest).
MAX_ERROR_CHARS = 1000

#: Told of every failure: (the error, tries so far, the pause before the next, retrying?).
OnFailure = Callable[[Exception, int, float, bool], None]


def retry(
    call: Callable[[], T],
    *,
    retry_on: tuple[type[Exception], ...],
    budget_s: float,
    first_pause_s: float = 0.5,
    max_pause_s: float = 5.0,
    growth: float = 2.0,
    min_tries: int = 1,
    interrupt: threading.Event | None = None,
    on_failure: OnFailure | None = None,
) -> T:
    """`call()`'s value, calling it again after a pause each time it raises.

    The pause after the n-th failure is `first_pause_s * growth ** (n - 1)`, at most
    `max_pause_s`. A failure is retried when fewer than `min_tries` tries were made
    (whatever the error), or when it is one of `retry_on` and the pause would end within
    `budget_s` of the first try; never once `interrupt` is set. Otherwise it is raised.
    The pause is `interrupt.wait` when there is one, so setting it cuts a pause short (the
    call is tried once more, and a failure then is raised). `on_failure` hears of every
    failure, before the pause or the raise.
    """
    pause_after = wait_exponential(multiplier=first_pause_s, exp_base=growth, max=max_pause_s)
    give_up = time.monotonic() + budget_s

    def worth_another_try(state: RetryCallState) -> bool:
        exc = state.outcome.exception() if state.outcome else None
        if exc is None:
            return False
        pause = pause_after(state)
        interrupted = interrupt is not None and interrupt.is_set()
        in_budget = isinstance(exc, retry_on) and time.monotonic() + pause <= give_up
        retrying = not interrupted and (state.attempt_number < min_tries or in_budget)
        if on_failure is not None:
            on_failure(exc, state.attempt_number, pause, retrying)
        return retrying

    retrying = Retrying(
        retry=worth_another_try,
        wait=pause_after,
        sleep=interrupt.wait if interrupt is not None else time.sleep,
        retry_error_callback=lambda state: state.outcome.result(),  # raise the call's error
    )
    return retrying(call)


def one_line(exc: BaseException) -> str:
    """`Type: message` on one line, at most MAX_ERROR_CHARS characters."""
    text = " ".join(str(exc).split())
    line = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return line if len(line) <= MAX_ERROR_CHARS else line[: MAX_ERROR_CHARS - 1] + "…"
