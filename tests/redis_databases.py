"""A private database on a shared Redis for one test session, claimed without collisions.

Concurrent test runs (two checkouts, CI and a developer, xdist workers) share the machine's
Redis. Each session claims one database number with `SET ewc-test-lock <owner> NX EX ttl`
inside that database: the first free one wins atomically, a crashed session's claim expires
on its own, and a thread refreshes the expiry while the session lives. Nothing is flushed:
a claimed database holds only what the claiming session puts there.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from urllib.parse import urlparse, urlunparse

LOCK_KEY = "ewc-test-lock"
#: A claim lives this long without a refresh (a killed session frees its database then).
LOCK_TTL_S = 120
REFRESH_S = 20

#: Delete the lock only if it is still ours (another session may own it after an expiry).
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
_REFRESH = ("if redis.call('get', KEYS[1]) == ARGV[1] then "
            "return redis.call('expire', KEYS[1], ARGV[2]) end return 0")


class NoFreeDatabase(RuntimeError):
    """Every database number of the server is claimed by another session."""


def base_url(url: str) -> str:
    """`url` without a database number (redis://host:6379/3 -> redis://host:6379)."""
    parsed = urlparse(url)
    return urlunparse(parsed._replace(path=""))


class RedisDatabaseClaim:
    """Claim a free database number (1..N-1; 0 is left to services) on the Redis at `url`."""

    def __init__(self, url: str):
        self.base = base_url(url)
        self.owner = f"{socket.gethostname()}:pid{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.number: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self.number is not None, "not claimed"
        return f"{self.base}/{self.number}"

    def _client(self, number: int):
        import redis

        return redis.Redis.from_url(f"{self.base}/{number}", socket_timeout=5)

    def _databases(self) -> int:
        import redis

        try:
            return int(self._client(0).config_get("databases").get("databases", 16))
        except (redis.RedisError, ValueError):  # CONFIG may be disabled: Redis' default
            return 16

    def acquire(self) -> str:
        """Claim the first free database; returns its URL (raises NoFreeDatabase)."""
        import redis

        count = self._databases()
        for number in range(1, count):
            client = self._client(number)
            try:
                won = client.set(LOCK_KEY, self.owner, nx=True, ex=LOCK_TTL_S)
            except redis.ResponseError:  # "DB index is out of range": fewer than we thought
                break
            finally:
                client.close()
            if won:
                self.number = number
                self._thread = threading.Thread(target=self._refresh, daemon=True,
                                                name="redis-claim-refresh")
                self._thread.start()
                return self.url
        raise NoFreeDatabase(
            f"all Redis databases 1..{count - 1} at {self.base} are claimed by other test "
            f"sessions (key {LOCK_KEY!r} in each; a dead session's claim expires within "
            f"{LOCK_TTL_S} s)"
        )

    def holder(self) -> str | None:
        """Who holds our database's lock now (our `owner` while the claim lasts)."""
        assert self.number is not None
        client = self._client(self.number)
        try:
            value = client.get(LOCK_KEY)
        finally:
            client.close()
        return value.decode() if value is not None else None

    def _refresh(self) -> None:
        import redis

        while not self._stop.wait(REFRESH_S):
            try:
                client = self._client(self.number)
                client.eval(_REFRESH, 1, LOCK_KEY, self.owner, LOCK_TTL_S)
                client.close()
            except redis.RedisError:
                pass  # Redis briefly away: the next refresh (well within the TTL) retries

    def release(self) -> None:
        """Give the database back (only if the lock is still ours)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if self.number is None:
            return
        client = self._client(self.number)
        try:
            client.eval(_RELEASE, 1, LOCK_KEY, self.owner)
        finally:
            client.close()
        self.number = None
