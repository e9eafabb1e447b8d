"""The API under a team's load: many clients at once, bursts, clients that leave, streams.

For each backend — `sqlite` (what `make run` starts: a SQLite file, an embedded
redis-server, the API started by `ewc up`'s own command line) and/or `pg` (a throwaway
PostgreSQL database + the machine's Redis) — in a throwaway database seeded with
`--experiments` experiments (see `service_speed.seed`), one real API process is started
and driven from this process with an async client (httpx.AsyncClient), only on 127.0.0.1:

1. burst   — `--burst` simultaneous GET /v1/experiments (each on its own connection):
             every one 200, the last within 5 s; then one GET < 100 ms;
2. leave   — `--burst` GETs whose clients hang up after 50 ms; then one GET < 100 ms
             (the server dropped the work of clients that left);
3. posts   — `--posts` simultaneous POST /v1/experiments from 10 users whose cap
             (EWC_MAX_ACTIVE_JOBS_PER_USER) is half their share: zero 5xx, each 201 or a
             429 naming the cap, exactly `cap` created per user; then one GET < 100 ms;
4. steady  — `--clients` clients each GET one of list / detail / experiment metrics /
             queues every `--every` s (random phase) for `--seconds` s, while `--streams`
             event streams (SSE, on queued experiments) stay open: zero 5xx, zero
             connection errors, p99 < 1 s, every stream still open at the end.

The table's backend column says how many API processes served (`ewc up` starts one per
core, EWC_API_WORKERS; `--workers 1` measures a single process).

    .venv/bin/python bench/api_load.py [--backend sqlite|pg|both] [--quick]

Prints one table (metric, target, measured, pass/fail) per backend. Figures are wall-clock
on whatever else the machine does (the client shares the machine's cores with the server).
Every process started is stopped, the PostgreSQL database dropped, the folder removed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import secrets
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from service_speed import (
    ROOT,
    Backend,
    Proc,
    cancel_and_purge,
    free_port,
    percentile,
    pg_backend,
    seed,
    spawn,
    sqlite_backend,
    wait_until,
)

SPEC = {"dataset": "digits", "model": "mlp", "dataset_update": "full", "epochs": 1, "seed": 0}
USERS = 10


@dataclass
class Sizes:
    experiments: int = 2000
    burst: int = 300
    posts: int = 100
    clients: int = 500
    every: float = 5.0
    seconds: float = 60.0
    streams: int = 200


QUICK = Sizes(experiments=500, burst=100, posts=40, clients=100, seconds=15.0, streams=40)


@dataclass
class Row:
    metric: str
    target: str
    measured: str
    ok: bool


@dataclass
class Report:
    backend: str
    rows: list[Row] = field(default_factory=list)

    def add(self, metric: str, target: str, measured: str, ok: bool) -> None:
        self.rows.append(Row(metric, target, measured, ok))


def _kind(exc: BaseException) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    if isinstance(exc, httpx.TransportError):
        return "connection"
    return type(exc).__name__


class RawConnection:
    """A minimal keep-alive HTTP/1.1 client on one connection (asyncio streams): the load
    generator must cost far less CPU than the server it loads (httpx costs about a
    millisecond a request, which on 2 cores would measure the client)."""

    def __init__(self, host: str, port: int, headers: dict[str, str]):
        self.host, self.port = host, port
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.extra = f"Host: {host}:{port}\r\n{extra}"
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str, timeout: float = 30.0) -> tuple[int, bytes]:
        """(status, body); reconnects when the server closed the connection."""
        return await asyncio.wait_for(self._get(path), timeout)

    async def _get(self, path: str) -> tuple[int, bytes]:
        reused = self.writer is not None and not self.writer.is_closing()
        if not reused:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None and self.writer is not None
        self.writer.write(f"GET {path} HTTP/1.1\r\n{self.extra}\r\n".encode())
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except (OSError, asyncio.IncompleteReadError):
            if not reused:
                raise
            # The server closed the idle connection (keep-alive timeout) as we sent: like
            # every HTTP client, retry a GET once on a new connection.
            self.close()
            return await self._get(path)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        fields = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:] if x)}
        body = await self.reader.readexactly(int(fields.get("content-length", "0")))
        if fields.get("connection", "").lower() == "close":
            self.close()
        return status, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


async def one_get_ms(url: str, headers: dict[str, str], path: str) -> float:
    """Milliseconds of one GET on a fresh connection; infinite unless it got a 200 within
    30 s."""
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
        t0 = time.perf_counter()
        try:
            r = await client.get(path)
        except httpx.HTTPError as exc:
            print(f"GET {path}: {_kind(exc)} after {time.perf_counter() - t0:.1f} s",
                  file=sys.stderr)  # fmt: skip
            return float("inf")
        ms = (time.perf_counter() - t0) * 1000
    if r.status_code != 200:
        print(f"GET {path}: {r.status_code} {r.text[:200]}", file=sys.stderr)
        return float("inf")
    return ms


def _host_port(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


async def burst(url: str, headers: dict[str, str], n: int) -> dict[str, Any]:
    """`n` simultaneous GET /v1/experiments, each on its own new connection."""
    host, port = _host_port(url)
    statuses: Counter[str] = Counter()
    done_at: list[float] = []
    gate = asyncio.Event()

    async def one() -> None:
        conn = RawConnection(host, port, headers)
        await gate.wait()
        try:
            code, _ = await conn.get("/v1/experiments")
            statuses[str(code)] += 1
        except (OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
            statuses["timeout" if isinstance(exc, TimeoutError) else "connection"] += 1
        finally:
            conn.close()
        done_at.append(time.perf_counter())

    tasks = [asyncio.ensure_future(one()) for _ in range(n)]
    await asyncio.sleep(0.2)
    t0 = time.perf_counter()
    gate.set()
    await asyncio.gather(*tasks)
    return {"statuses": statuses, "last_s": max(done_at) - t0}


async def leave(url: str, headers: dict[str, str], n: int) -> Counter[str]:
    """`n` simultaneous GETs whose clients hang up after 50 ms."""
    limits = httpx.Limits(max_connections=n + 10, max_keepalive_connections=0)
    outcome: Counter[str] = Counter()
    timeout = httpx.Timeout(30, read=0.05)  # connect, send, then hang up after 50 ms
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=timeout, limits=limits) as c:

        async def one() -> None:
            try:
                r = await c.get("/v1/experiments", params={"limit": 200})
                outcome[str(r.status_code)] += 1
            except Exception as exc:  # noqa: BLE001 - the point
                outcome[_kind(exc)] += 1

        await asyncio.gather(*(one() for _ in range(n)))
    return outcome


async def posts(url: str, tokens: list[str], n: int, cap: int) -> dict[str, Any]:
    """`n` simultaneous POSTs spread over `tokens`; per token: created ids and 429s."""
    limits = httpx.Limits(max_connections=n + 10, max_keepalive_connections=0)
    statuses: Counter[str] = Counter()
    created: dict[str, list[int]] = {t: [] for t in tokens}
    bad_429 = 0
    gate = asyncio.Event()
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as c:

        async def one(token: str) -> None:
            nonlocal bad_429
            await gate.wait()
            try:
                r = await c.post(
                    "/v1/experiments", json=SPEC, headers={"Authorization": f"Bearer {token}"}
                )
            except Exception as exc:  # noqa: BLE001 - counted
                statuses[_kind(exc)] += 1
                return
            statuses[str(r.status_code)] += 1
            if r.status_code == 201:
                created[token].append(r.json()["id"])
            elif r.status_code == 429 and f"cap is {cap}" not in r.text and str(cap) not in r.text:
                bad_429 += 1

        tasks = [asyncio.ensure_future(one(tokens[i % len(tokens)])) for i in range(n)]
        await asyncio.sleep(0.2)
        gate.set()
        await asyncio.gather(*tasks)
    return {"statuses": statuses, "created": created, "bad_429": bad_429}


async def steady(
    url: str, headers: dict[str, str], ids: list[int], queued: list[int], sizes: Sizes
) -> dict[str, Any]:
    """Pollers plus open event streams; latencies of the polls, fate of the streams."""
    rng = random.Random(7)
    host, port = _host_port(url)
    limits = httpx.Limits(max_connections=sizes.streams + 10, max_keepalive_connections=0)
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    streams: Counter[str] = Counter()
    stop = asyncio.Event()
    timeout = httpx.Timeout(30, read=None)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=timeout, limits=limits) as c:

        async def stream(eid: int) -> None:
            try:
                async with c.stream("GET", f"/v1/experiments/{eid}/events") as r:
                    if r.status_code != 200:
                        streams[f"http {r.status_code}"] += 1
                        return
                    streams["opened"] += 1
                    it = r.aiter_raw()
                    while not stop.is_set():
                        nxt = asyncio.ensure_future(it.__anext__())
                        halt = asyncio.ensure_future(stop.wait())
                        await asyncio.wait({nxt, halt}, return_when=asyncio.FIRST_COMPLETED)
                        halt.cancel()
                        if not nxt.done():
                            nxt.cancel()
                            streams["open at the end"] += 1
                            return
                        nxt.result()  # raises StopAsyncIteration when the server closed it
            except StopAsyncIteration:
                streams["closed by the server"] += 1
            except Exception as exc:  # noqa: BLE001 - counted
                streams[_kind(exc)] += 1

        def path() -> str:
            kind = rng.randrange(4)
            if kind == 0:
                return "/v1/experiments?limit=50"
            if kind == 1:
                return f"/v1/experiments/{rng.choice(ids)}"
            if kind == 2:
                return f"/v1/experiments/{rng.choice(ids)}/metrics"
            return "/v1/queues"

        async def poller(deadline: float) -> None:
            conn = RawConnection(host, port, headers)
            await asyncio.sleep(rng.uniform(0, sizes.every))
            try:
                while time.monotonic() < deadline:
                    t0 = time.perf_counter()
                    try:
                        code, _ = await conn.get(path())
                        statuses[str(code)] += 1
                    except (OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
                        statuses["timeout" if isinstance(exc, TimeoutError) else "connection"] += 1
                        conn.close()
                    latencies.append(time.perf_counter() - t0)
                    await asyncio.sleep(max(0.0, sizes.every - (time.perf_counter() - t0)))
            finally:
                conn.close()

        stream_tasks = [
            asyncio.ensure_future(stream(queued[i % len(queued)])) for i in range(sizes.streams)
        ]
        await asyncio.sleep(2.0)  # let the streams open first
        deadline = time.monotonic() + sizes.seconds
        await asyncio.gather(*(poller(deadline) for _ in range(sizes.clients)))
        stop.set()
        await asyncio.gather(*stream_tasks)
    return {"latencies": latencies, "statuses": statuses, "streams": streams}


def _fmt(counter: Counter[str]) -> str:
    return ", ".join(f"{k}×{v}" for k, v in sorted(counter.items())) or "none"


def _five_xx(counter: Counter[str]) -> int:
    return sum(v for k, v in counter.items() if k.startswith("5"))


def _errors(counter: Counter[str]) -> int:
    return sum(v for k, v in counter.items() if not k.isdigit())


async def drive(url: str, seeded: dict[str, Any], user_tokens: list[str], cap: int,
                sizes: Sizes, report: Report, say) -> list[int]:
    """Phases 1–4 against the API at `url`; the ids the POSTs created."""
    headers = {"Authorization": f"Bearer {seeded['reader_token']}"}
    ids, queued = seeded["ids"], seeded["queued"]
    await one_get_ms(url, headers, "/v1/experiments")  # warm

    b = await burst(url, headers, sizes.burst)
    after = await one_get_ms(url, headers, "/v1/experiments?limit=1")
    ok200 = b["statuses"].get("200", 0) == sizes.burst
    report.add(f"burst of {sizes.burst} GETs: answers", f"{sizes.burst}×200",
               _fmt(b["statuses"]), ok200)  # fmt: skip
    report.add("burst: last answer", "< 5 s", f"{b['last_s']:.2f} s", ok200 and b["last_s"] < 5)
    report.add("burst: next single GET", "< 100 ms", f"{after:.0f} ms", after < 100)
    say(f"[{report.backend}] burst: {_fmt(b['statuses'])}, last {b['last_s']:.2f} s")

    gone = await leave(url, headers, sizes.burst)
    t0 = time.perf_counter()
    after = await one_get_ms(url, headers, "/v1/experiments?limit=1")
    report.add(f"{sizes.burst} clients hang up after 50 ms: next GET", "< 100 ms",
               f"{after:.0f} ms ({_fmt(gone)})", after < 100)  # fmt: skip
    say(f"[{report.backend}] leave: {_fmt(gone)}; next GET {after:.0f} ms "
        f"({(time.perf_counter() - t0) * 1000:.0f} ms with connect)")  # fmt: skip

    p = await posts(url, user_tokens, sizes.posts, cap)
    after = await one_get_ms(url, headers, "/v1/experiments?limit=1")
    per_user = Counter(len(v) for v in p["created"].values())
    expected = min(cap, sizes.posts // len(user_tokens))
    exact = set(per_user) == {expected}
    only = set(p["statuses"]) <= {"201", "429"}
    report.add(f"{sizes.posts} POSTs from {len(user_tokens)} users: answers", "only 201/429",
               _fmt(p["statuses"]), only and _five_xx(p["statuses"]) == 0)  # fmt: skip
    report.add(f"POSTs: created per user (cap {cap})", f"{expected} each, 429s name the cap",
               f"{_fmt(Counter({f'{k} created': v for k, v in per_user.items()}))}; "
               f"{p['bad_429']} bad 429", exact and p["bad_429"] == 0)  # fmt: skip
    report.add("POSTs: next single GET", "< 100 ms", f"{after:.0f} ms", after < 100)
    say(f"[{report.backend}] posts: {_fmt(p['statuses'])}")
    created = [i for v in p["created"].values() for i in v]

    s = await steady(url, headers, ids, queued, sizes)
    lat = s["latencies"]
    p50, p99 = percentile(lat, 50) * 1000, percentile(lat, 99) * 1000
    report.add(f"{sizes.clients} clients every {sizes.every:g} s for {sizes.seconds:g} s: 5xx",
               "0", f"{_five_xx(s['statuses'])} of {len(lat)}",
               _five_xx(s["statuses"]) == 0)  # fmt: skip
    report.add("steady: connection errors", "0", f"{_errors(s['statuses'])} ({_fmt(s['statuses'])})",
               _errors(s["statuses"]) == 0)  # fmt: skip
    report.add("steady: latency p50 / p99 / max", "p99 < 1 s",
               f"{p50:.0f} / {p99:.0f} / {max(lat) * 1000:.0f} ms", p99 < 1000)  # fmt: skip
    held = s["streams"].get("open at the end", 0)
    report.add(f"steady: {sizes.streams} event streams", "all open at the end",
               _fmt(s["streams"]), held == sizes.streams)  # fmt: skip
    say(f"[{report.backend}] steady: p50 {p50:.0f} ms p99 {p99:.0f} ms, {_fmt(s['statuses'])}; "
        f"streams {_fmt(s['streams'])}")  # fmt: skip
    return created


def make_users(backend: Backend, n: int) -> list[str]:
    """`n` more users with a token each; their tokens."""
    from store.db import make_engine, make_session_factory, unit_of_work
    from store.users import create_token, create_user

    engine = make_engine(backend.database_url)
    try:
        with unit_of_work(make_session_factory(engine)) as session:
            return [create_token(session, create_user(session, f"load-{k}"))[1] for k in range(n)]
    finally:
        engine.dispose()


def queued_ids(backend: Backend) -> list[int]:
    from sqlalchemy import select

    from store.db import make_engine, make_session_factory
    from store.models import Experiment, JobStatus

    engine = make_engine(backend.database_url)
    try:
        with make_session_factory(engine)() as session:
            return list(
                session.scalars(select(Experiment.id).where(Experiment.status == JobStatus.queued))
            )
    finally:
        engine.dispose()


def bench_backend(backend: Backend, sizes: Sizes, say, workers: int = 0) -> Report:
    """Seed, start the API as `ewc up` does, drive it; the API is stopped before returning."""
    from cli.local_service import api_command, api_processes
    from common.settings import Settings

    settings = Settings(_env_file=None, host="127.0.0.1", port=free_port(), log_level="WARNING",
                        api_workers=workers)  # fmt: skip
    report = Report(f"{backend.name} ×{api_processes(settings)}")
    seeded = seed(backend, sizes.experiments, random.Random(0))
    seeded["queued"] = queued_ids(backend)
    tokens = make_users(backend, USERS)
    cap = max(1, sizes.posts // USERS // 2)
    port = settings.port
    env = {
        "EWC_DATABASE_URL": backend.database_url,
        "EWC_BROKER_URL": backend.broker_url,
        "EWC_ADMIN_TOKEN": "ewc_bench_admin_" + secrets.token_urlsafe(16),
        "EWC_DATA_DIR": str(backend.folder / "data"),
        "EWC_MAX_ACTIVE_JOBS_PER_USER": str(cap),
        "EWC_LOG_LEVEL": "WARNING",
    }
    api: Proc = spawn(f"api-{backend.name}", api_command(settings), env, backend.folder)
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    created: list[int] = []
    try:
        wait_until("the API's /healthz", healthy, 60, api)
        say(f"[{backend.name}] seeded {seeded['stored']} experiments; API pid {api.popen.pid}")
        created = asyncio.run(drive(url, seeded, tokens, cap, sizes, report, say))
        if not api.alive():
            report.add("API process", "alive", f"exited {api.popen.returncode}", False)
    finally:
        api.stop()
        if created:
            cancel_and_purge(backend, created)
    return report


def table(reports: list[Report]) -> str:
    rows = [("backend", "metric", "target", "measured", "result")]
    for rep in reports:
        rows += [(rep.backend, r.metric, r.target, r.measured, "pass" if r.ok else "FAIL")
                 for r in rep.rows]  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "pg", "both"], default="both")
    parser.add_argument("--quick", action="store_true", help="smaller counts, 15 s steady phase")
    parser.add_argument("--clients", type=int)
    parser.add_argument("--streams", type=int)
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--burst", type=int)
    parser.add_argument("--workers", type=int, default=0,
                        help="API processes (EWC_API_WORKERS); 0: as `ewc up` (one per core)")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else Sizes()
    for name in ("clients", "streams", "seconds", "burst"):
        if getattr(args, name) is not None:
            setattr(sizes, name, getattr(args, name))

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    os.chdir(ROOT)
    say(f"api_load: {sizes} — {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    reports = []
    for name in ("sqlite", "pg") if args.backend == "both" else (args.backend,):
        folder = Path(tempfile.mkdtemp(prefix=f"ewc-load-{name}-"))
        try:
            with (sqlite_backend if name == "sqlite" else pg_backend)(folder) as backend:
                reports.append(bench_backend(backend, sizes, say, args.workers))
        finally:
            with contextlib.suppress(OSError):
                shutil.rmtree(folder)
    print(table(reports))
    say(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0 if all(r.ok for rep in reports for r in rep.rows) else 1


if __name__ == "__main__":
    sys.exit(main())
