"""The API holds up under many clients at once (issue 8 §1; the figures: bench/api_load.py).

A real API (uvicorn, started with `ewc up`'s own command line: one process per core) on a real SQLite
file and on the real PostgreSQL, driven by an async client on 127.0.0.1. Bounds are loose
(the machine is shared): the point is the shape — every request answered, nothing left
wedged, overload a fast busy 503 — not the speed.

Before the fix a burst of 100 simultaneous GETs got 99 timeouts after 30 s and the next
single GET timed out too.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from cli.local_service import api_command
from common.settings import Settings
from store import users
from store.db import make_engine, make_session_factory, unit_of_work

ROOT = Path(__file__).resolve().parents[2]
ADMIN = "ewc_guard_" + secrets.token_urlsafe(24)
SPEC = {"dataset": "digits", "dataset_update": "full", "epochs": 1}
#: Generous: a burst must be answered well within this on a loaded 2-core machine.
BURST_BOUND_S = 60.0
#: A single GET right after a burst (the issue's target is 100 ms).
AFTER_BOUND_S = 3.0
#: How long one slow request body holds the API's only thread while clients come and go.
HOLD_S = 5.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Api:
    """A real API process; `url`, `admin` headers; stopped by the fixture."""

    def __init__(self, database_url: str, broker_url: str, folder: Path, **env: str):
        port = _free_port()
        settings = Settings(
            _env_file=None, host="127.0.0.1", port=port, log_level="WARNING",
            api_workers=int(env.get("EWC_API_WORKERS", "0")),
        )  # fmt: skip
        self.url = f"http://127.0.0.1:{port}"
        self.admin = {"Authorization": f"Bearer {ADMIN}"}
        self.log = folder / f"api-{port}.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                api_command(settings),
                cwd=ROOT,
                env={
                    **os.environ,
                    "EWC_DATABASE_URL": database_url,
                    "EWC_BROKER_URL": broker_url,
                    "EWC_ADMIN_TOKEN": ADMIN,
                    "EWC_DATA_DIR": str(folder),
                    "EWC_LOG_LEVEL": "WARNING",
                    "PYTHONUNBUFFERED": "1",
                    **env,
                },
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"the API did not start:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@pytest.fixture
def start_api(migrated_url, redis_url, tmp_path):
    started: list[Api] = []

    def start(**env: str) -> Api:
        api = Api(migrated_url, redis_url, tmp_path, **env)
        started.append(api)
        return api

    yield start
    for api in started:
        api.stop()


def _tokens(url: str, n: int) -> list[str]:
    engine = make_engine(url)
    try:
        with unit_of_work(make_session_factory(engine)) as s:
            return [users.create_token(s, users.create_user(s, f"guard-{k}"))[1] for k in range(n)]
    finally:
        engine.dispose()


async def _burst(url: str, requests: list[tuple[str, str, dict, dict | None]],
                 timeout: float = 90.0) -> tuple[Counter, list[httpx.Response], float]:
    """Send every (method, path, headers, json) at once, each on its own connection;
    (outcomes, responses, seconds until the last answer)."""
    limits = httpx.Limits(max_connections=len(requests) + 5, max_keepalive_connections=0)
    outcomes: Counter[str] = Counter()
    responses: list[httpx.Response] = []
    gate = asyncio.Event()
    async with httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits) as client:

        async def one(method: str, path: str, headers: dict, body: dict | None) -> None:
            await gate.wait()
            try:
                r = await client.request(method, path, headers=headers, json=body)
            except httpx.HTTPError as exc:
                outcomes[type(exc).__name__] += 1
                return
            outcomes[str(r.status_code)] += 1
            responses.append(r)

        tasks = [asyncio.ensure_future(one(*req)) for req in requests]
        await asyncio.sleep(0.2)
        t0 = time.monotonic()
        gate.set()
        await asyncio.gather(*tasks)
        return outcomes, responses, time.monotonic() - t0


def _single_get_s(api: Api) -> float:
    t0 = time.monotonic()
    r = httpx.get(f"{api.url}/v1/experiments?limit=1", headers=api.admin, timeout=60)
    assert r.status_code == 200, r.text
    return time.monotonic() - t0


def test_a_burst_of_gets_is_answered_in_full_and_leaves_nothing_wedged(start_api) -> None:
    api = start_api()
    for _ in range(5):
        assert httpx.post(f"{api.url}/v1/experiments", json=SPEC, headers=api.admin).status_code == 201
    burst = [("GET", "/v1/experiments", api.admin, None)] * 200
    outcomes, _, last_s = asyncio.run(_burst(api.url, burst))
    assert outcomes == Counter({"200": 200}), outcomes
    assert last_s < BURST_BOUND_S
    assert _single_get_s(api) < AFTER_BOUND_S


def test_concurrent_posts_are_each_created_or_a_correct_429(start_api, migrated_url) -> None:
    tokens = _tokens(migrated_url, 6)
    api = start_api(EWC_MAX_ACTIVE_JOBS_PER_USER="4")
    posts = [("POST", "/v1/experiments", {"Authorization": f"Bearer {tokens[i % 6]}"}, SPEC)
             for i in range(60)]  # fmt: skip
    outcomes, responses, _ = asyncio.run(_burst(api.url, posts))
    assert outcomes == Counter({"201": 24, "429": 36}), outcomes
    for r in responses:
        if r.status_code == 429:
            assert "the cap is 4" in r.json()["detail"]
    assert _single_get_s(api) < AFTER_BOUND_S


def test_work_of_clients_that_left_is_dropped(start_api) -> None:
    # One process (its /metrics are the whole count), one thread.
    api = start_api(EWC_API_WORKERS="1", EWC_API_THREADS="1")
    for _ in range(20):
        httpx.post(f"{api.url}/v1/experiments", json=SPEC, headers=api.admin)

    async def leave() -> int:
        limits = httpx.Limits(max_connections=400, max_keepalive_connections=0)
        timeout = httpx.Timeout(30, read=0.05)  # connect, send, then hang up after 50 ms
        async with httpx.AsyncClient(base_url=api.url, timeout=timeout, limits=limits) as c:

            async def late_body():  # holds the one thread: its body ends HOLD_S late
                yield b'{"dataset": "digits", '
                await asyncio.sleep(HOLD_S)
                yield b'"dataset_update": "full", "epochs": 1}'

            holder = asyncio.ensure_future(c.post(
                "/v1/experiments", content=late_body(), timeout=httpx.Timeout(60),
                headers={**api.admin, "Content-Type": "application/json"},
            ))  # fmt: skip
            await asyncio.sleep(0.5)  # admitted before anyone queues

            async def one() -> None:
                try:
                    await c.get("/v1/experiments?limit=200", headers=api.admin)
                except httpx.HTTPError:
                    pass

            await asyncio.gather(*(one() for _ in range(300)))
            return (await holder).status_code

    assert asyncio.run(leave()) == 201
    assert _single_get_s(api) < AFTER_BOUND_S
    # Every GET queued behind the held thread and hung up long before it came free: their
    # work is dropped, not done for nobody (a few may still be connecting when it frees).
    assert _refused(api, "client_left") >= 250


def _refused(api: Api, reason: str) -> float:
    """`ewc_http_refused_total{reason=...}` from the API's /metrics."""
    text = httpx.get(f"{api.url}/metrics", timeout=60).text
    for line in text.splitlines():
        if line.startswith(f'ewc_http_refused_total{{reason="{reason}"}}'):
            return float(line.split()[-1])
    return 0.0


def test_overload_is_a_fast_busy_503_with_retry_after(start_api) -> None:
    api = start_api(
        EWC_API_WORKERS="1", EWC_API_THREADS="1", EWC_API_QUEUE="2", EWC_API_QUEUE_TIMEOUT_S="1"
    )
    burst = [("GET", "/v1/experiments", api.admin, None)] * 60
    outcomes, responses, last_s = asyncio.run(_burst(api.url, burst))
    assert set(outcomes) <= {"200", "503"} and outcomes["503"] > 0, outcomes
    busy = [r for r in responses if r.status_code == 503]
    for r in busy:
        assert int(r.headers["Retry-After"]) >= 1
        assert "busy" in r.json()["detail"] and "migrate" not in r.json()["detail"]
    assert last_s < BURST_BOUND_S
    assert _single_get_s(api) < AFTER_BOUND_S
    assert _refused(api, "busy") == outcomes["503"]


def test_the_migrate_hint_is_given_only_when_the_schema_is_missing(
    empty_url, redis_url, tmp_path
) -> None:
    api = Api(empty_url, redis_url, tmp_path)
    try:
        r = httpx.get(f"{api.url}/v1/experiments", headers=api.admin, timeout=30)
    finally:
        api.stop()
    assert r.status_code == 503
    assert "ewc migrate" in r.json()["detail"]


def test_a_locked_database_is_busy_not_unmigrated(tmp_path) -> None:
    """SQLite's "database is locked" (another writer holds the lock) is a busy 503."""
    import sqlite3

    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    from api.errors import database_unavailable

    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN IMMEDIATE")
    engine = make_engine(f"sqlite:///{path}")
    try:
        with pytest.raises(OperationalError) as caught, engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA busy_timeout=50")
            conn.execute(text("INSERT INTO t VALUES (1)"))
    finally:
        engine.dispose()
        holder.close()
    kind, message, retry_after = database_unavailable(caught.value, str(caught.value.orig))
    assert kind == "busy" and "busy" in message and "migrate" not in message
    assert retry_after >= 1


if sys.platform != "linux":  # pragma: no cover
    pytestmark = pytest.mark.skip("process groups and real sockets: Linux only")
