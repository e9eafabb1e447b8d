"""A real HTTP server that receives webhooks, for the webhook tests.

`Receiver` runs a `ThreadingHTTPServer` on 127.0.0.1 (a free port) in a thread, records every
POST (path, headers, raw body) and answers with the next status of `statuses` (then 200).
`verify` checks a request's signature the way the README tells a receiver to.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class Receiver:
    statuses: list[int] = field(default_factory=list)  # answers to give, in order; then 200
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    receiver.received.append(
                        Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    code = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(code)
                if 300 <= code < 400:
                    self.send_header("Location", "http://elsewhere.invalid/")
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok" if code < 300 else b"receiver says no")

            def log_message(self, *_args: Any) -> None:
                pass

        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/ewc"

    def wait_for(self, count: int, timeout_s: float = 30.0) -> list[Received]:
        """The requests received, once there are at least `count` (AssertionError after
        `timeout_s`)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.02)
        raise AssertionError(f"{len(self.received)} webhook calls received, wanted {count}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def verify(secret: str, request: Received) -> bool:
    """The README's receiver check: HMAC-SHA256 of "<timestamp>.<raw body>"."""
    timestamp = request.headers["x-ewc-timestamp"]
    expected = (
        "sha256="
        + hmac.new(
            secret.encode(), timestamp.encode() + b"." + request.body, hashlib.sha256
        ).hexdigest()
    )
    return hmac.compare_digest(expected, request.headers["x-ewc-signature"])
