"""A REAL S3 endpoint for tests: moto's standalone HTTP server in a subprocess on a free
port, the AWS_* variables that point a process at it, and a TCP proxy that can take the
endpoint away and bring it back with everything it held.

Why a proxy for outages: moto's server keeps its buckets in memory, so stopping and
restarting it loses them (a real bucket outlives an outage). Stopping the proxy instead
closes its port and every connection through it, so a client sees exactly what a dead
endpoint gives (connection refused, then reset), and starting it again on the same port
brings back the same bucket.

moto (with its server extra) and boto3 are dev dependencies: without them these tests
skip locally and fail in strict mode (tests/requirements.py).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.processes import free_port
from tests.requirements import require_module

#: A secret no message, log line or repr may ever show.
SECRET = "sEcReT-" + uuid.uuid4().hex
ACCESS_KEY = "AKIATEST" + uuid.uuid4().hex[:12].upper()


def require_moto() -> None:
    hint = "install the dev extra: pip install 'moto[server]'"
    require_module("boto3", "boto3", hint)
    require_module("moto.server", "moto[server]", hint)
    require_module("flask", "moto[server]", hint)


def _wait_for_port(port: int, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"moto server did not start: {log.read_text()[-2000:]}")
            time.sleep(0.1)


@contextlib.contextmanager
def moto_server(log: Path) -> Iterator[str]:
    """http://127.0.0.1:<port> of a moto S3 server running until the block ends."""
    require_moto()
    port = free_port()
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out, stderr=subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        )  # fmt: skip
    try:
        _wait_for_port(port, proc, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait()


def aws_variables(endpoint: str) -> dict[str, str]:
    """The standard AWS_* variables of a process talking to `endpoint` with our keys."""
    return {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_CONFIG_FILE": "/nonexistent",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
    }


def create_bucket(endpoint: str, name: str | None = None) -> str:
    """A new, empty bucket on `endpoint`; its name."""
    import boto3

    name = name or f"ewc-{uuid.uuid4().hex[:16]}"
    client = boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET,
    )  # fmt: skip
    client.create_bucket(Bucket=name)
    return name


def bucket_keys(endpoint: str, bucket: str) -> list[str]:
    """Every object key in `bucket`, as stored (manifests and versions included)."""
    import boto3

    client = boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET,
    )  # fmt: skip
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


class TcpProxy:
    """Forwards 127.0.0.1:`port` to 127.0.0.1:`target_port` while started; `stop` closes
    the port and cuts every connection, `start` opens the same port again."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.port = free_port()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._stopped = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.1)
        self._listener, self._stopped = listener, threading.Event()
        threading.Thread(target=self._accept, args=(listener, self._stopped), daemon=True).start()

    def _accept(self, listener: socket.socket, stopped: threading.Event) -> None:
        while not stopped.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), 5)
            except OSError:
                client.close()
                continue
            client.settimeout(None)
            with self._lock:
                self._open |= {client, upstream}
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(1 << 16):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                self._close(sock)

    def _close(self, sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
        with self._lock:
            self._open.discard(sock)

    def stop(self) -> None:
        """The endpoint is gone: nothing listens on the port, open connections are cut."""
        self._stopped.set()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            doomed = list(self._open)
        for sock in doomed:
            self._close(sock)
