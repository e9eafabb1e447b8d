"""Typed errors of the store. Each carries a message a person can act on; the API turns
them into 4xx responses (`NotFound` → 404, `Conflict` → 409, `LimitReached` → 429,
`InvalidInput` → 422) and the admin CLI into an exit code 1 with the message."""

from __future__ import annotations


class StoreError(Exception):
    """Base class of every error the store raises on purpose."""


class NotFound(StoreError):
    """The row asked for does not exist."""


class Conflict(StoreError):
    """The request contradicts the current state (a finished job, a taken name)."""


class LimitReached(StoreError):
    """A quota would be exceeded (e.g. a user's active jobs)."""


class InvalidInput(StoreError):
    """An argument is malformed (e.g. an unreadable pagination cursor)."""

    #: The request field the problem is about (the API names it in its 422).
    field: str = "request"


class ExperimentNotFound(NotFound):
    def __init__(self, experiment_id: int):
        super().__init__(f"experiment {experiment_id} does not exist")
        self.experiment_id = experiment_id


class ExperimentFinished(Conflict):
    def __init__(self, experiment_id: int, status: str):
        super().__init__(
            f"experiment {experiment_id} is already {status}; only queued or running "
            "experiments can be cancelled"
        )
        self.experiment_id, self.status = experiment_id, status


class ActiveJobCapReached(LimitReached):
    def __init__(self, user: str, active: int, cap: int):
        super().__init__(
            f"user {user!r} already has {active} queued or running experiments; the cap is "
            f"{cap} per user. Wait for some to finish or cancel some."
        )
        self.user, self.active, self.cap = user, active, cap


class InvalidCursor(InvalidInput):
    field = "cursor"

    def __init__(self, cursor: str):
        super().__init__(
            f"cursor {cursor!r} is not one this server gave out; pass the `next_cursor` of "
            "the previous page unchanged"
        )


class UserExists(Conflict):
    def __init__(self, name: str):
        super().__init__(f"a user named {name!r} already exists; pick another name")
        self.name = name


class UserNotFound(NotFound):
    def __init__(self, name: str):
        super().__init__(f"no user named {name!r}; create one with `ewc users create {name}`")
        self.name = name


class TokenNotFound(NotFound):
    def __init__(self, token_id: int):
        super().__init__(f"token {token_id} does not exist; see `ewc tokens list`")
        self.token_id = token_id


def error_reason(exc: BaseException, limit: int | None = None) -> str:
    """The one line to show or log for a database error: the driver's own message when
    SQLAlchemy wraps one (`exc.orig`), its first line, at most `limit` characters (the
    exception's type when it has no message)."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:limit]
