"""Throttle failed authentication per client: bearer tokens (`api.deps`) and the
dashboard's login form share one budget.

Each client (its address) may fail `MAX_FAILURES` times; the budget refills at that many
per `WINDOW_S` seconds. A client with no budget left gets 429 with `Retry-After` for every
token the server has not recently seen work — the token is not even looked up, so guessing
goes no faster than the refill. A token that authenticated recently (from any client) is
checked as usual, so a valid user behind the same address is never slowed.

State is per API process and bounded (`MAX_CLIENTS` addresses, `MAX_KNOWN` tokens).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from fastapi import HTTPException, Request, status
from sqlalchemy.orm import Session

from store import users
from store.models import User

#: Failed attempts a client may make before it must wait (the budget's size).
MAX_FAILURES = 10
#: Seconds in which a spent budget refills completely.
WINDOW_S = 60.0
#: Clients and recently valid tokens remembered (the oldest are forgotten first).
MAX_CLIENTS = 10_000
MAX_KNOWN = 10_000
#: Seconds a token that worked counts as recently valid.
KNOWN_TTL_S = 3600.0


@dataclass
class _Budget:
    tokens: float
    at: float


class AuthThrottle:
    """Failure budgets per client (token bucket) and the set of recently valid tokens."""

    def __init__(
        self,
        max_failures: int = MAX_FAILURES,
        window_s: float = WINDOW_S,
        clock=time.monotonic,
    ):
        self.max_failures = max_failures
        self.rate = max_failures / window_s  # budget refilled per second
        self.clock = clock
        self._lock = threading.Lock()
        self._budgets: OrderedDict[str, _Budget] = OrderedDict()
        self._known: OrderedDict[str, float] = OrderedDict()

    def _budget(self, client: str, now: float) -> _Budget:
        budget = self._budgets.get(client)
        if budget is None:
            budget = self._budgets[client] = _Budget(float(self.max_failures), now)
            while len(self._budgets) > MAX_CLIENTS:
                self._budgets.popitem(last=False)
        else:
            budget.tokens = min(self.max_failures, budget.tokens + (now - budget.at) * self.rate)
            budget.at = now
            self._budgets.move_to_end(client)
        return budget

    def retry_after(self, client: str) -> int:
        """0 when `client` may try a token; else the seconds until it may try one."""
        with self._lock:
            budget = self._budget(client, self.clock())
            if budget.tokens >= 1:
                return 0
            return max(1, math.ceil((1 - budget.tokens) / self.rate))

    def failed(self, client: str) -> None:
        """Spend one attempt of `client`'s budget."""
        with self._lock:
            budget = self._budget(client, self.clock())
            budget.tokens = max(0.0, budget.tokens - 1)

    def is_known(self, digest: str) -> bool:
        """True when the token with this hash authenticated within `KNOWN_TTL_S`."""
        with self._lock:
            seen = self._known.get(digest)
            return seen is not None and self.clock() - seen < KNOWN_TTL_S

    def succeeded(self, digest: str) -> None:
        """Remember that the token with this hash is valid."""
        with self._lock:
            self._known[digest] = self.clock()
            self._known.move_to_end(digest)
            while len(self._known) > MAX_KNOWN:
                self._known.popitem(last=False)


def client_key(request: Request) -> str:
    """The client's address (uvicorn resolves trusted proxy headers into it)."""
    return request.client.host if request.client else "unknown"


def too_many_failures(retry_after_s: int) -> HTTPException:
    """429: this client failed too often; when it may try again."""
    return HTTPException(
        status_code=status.HTTP_429_TOO_MANY_REQUESTS,
        detail=f"too many failed authentication attempts from this address; retry in "
        f"{retry_after_s} s",
        headers={"Retry-After": str(retry_after_s)},
    )


def throttle_of(request: Request) -> AuthThrottle:
    """The app's throttle (one per app, created on first use)."""
    state = request.app.state
    throttle = getattr(state, "auth_throttle", None)
    if throttle is None:
        throttle = state.auth_throttle = AuthThrottle()
    return throttle


def throttled_authenticate(request: Request, session: Session, token: str) -> User | None:
    """`users.authenticate`, throttled per client: None for a bad token (one attempt
    spent); 429 (HTTPException) while the client's budget is spent, unless the token is
    known to be valid."""
    throttle = throttle_of(request)
    client = client_key(request)
    digest = users.hash_token(token)
    wait = throttle.retry_after(client)
    if wait and not throttle.is_known(digest):
        raise too_many_failures(wait)
    user = users.authenticate(session, token)
    if user is None:
        throttle.failed(client)
    else:
        throttle.succeeded(digest)
    return user
