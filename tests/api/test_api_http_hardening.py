"""Issue 8 §4–§5 against a real uvicorn (on SQLite, then PostgreSQL): an oversized body is
answered 413 to a client that keeps sending (Python's urllib), invented HTTP methods do not
grow /metrics, and a Last-Event-ID no row can hold does not break the event stream."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request

import httpx
import pytest

from tests.e2e.conftest import processes, start_api  # noqa: F401 - the fixture

ADMIN_TOKEN = "http-hardening-admin-token-0123"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def server(processes, migrated_url, redis_url, tmp_path) -> str:  # noqa: F811
    env = {
        "EWC_DATABASE_URL": migrated_url,
        "EWC_BROKER_URL": redis_url,
        "EWC_DATA_DIR": str(tmp_path / "data"),
        "EWC_ADMIN_TOKEN": ADMIN_TOKEN,
        "EWC_EVENTS_MAX_S": "1",
        "EWC_LOG_LEVEL": "WARNING",
    }
    _api, url = start_api(processes, env)
    return url


def test_urllib_sending_a_large_body_reads_the_413(server) -> None:
    for megabytes in (1, 3, 5):
        _post_with_urllib(server, megabytes)


def _post_with_urllib(server: str, megabytes: int) -> None:
    body = b'{"name": "' + b"x" * (megabytes * 1024 * 1024) + b'"}'
    request = urllib.request.Request(
        f"{server}/v1/experiments", data=body, method="POST",
        headers={**AUTH, "Content-Type": "application/json"},
    )  # fmt: skip
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=60)
    assert caught.value.code == 413
    assert "EWC_MAX_BODY_BYTES" in caught.value.read().decode()


def test_a_chunked_body_over_the_limit_is_answered_413(server) -> None:
    # Like urllib, the client sends its whole body before it reads: 5 MB in 64 KiB chunks.
    host, port = "127.0.0.1", int(server.rsplit(":", 1)[1])
    with socket.create_connection((host, port), 60) as sock:
        sock.sendall(
            f"POST /v1/experiments HTTP/1.1\r\nHost: {host}\r\nAuthorization: {AUTH['Authorization']}"
            "\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        )
        chunk = b"x" * 65536
        for _ in range(80):
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        sock.sendall(b"0\r\n\r\n")
        answer = b""
        while not answer.endswith(b"}") and (part := sock.recv(65536)):
            answer += part
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"EWC_MAX_BODY_BYTES" in answer


def _series(url: str) -> list[str]:
    text = httpx.get(f"{url}/metrics", timeout=30).text
    return [line for line in text.splitlines() if line.startswith("ewc_http_requests_total{")]


def test_invented_methods_do_not_grow_the_metrics(server) -> None:
    before = len(_series(server))
    for i in range(30):
        with socket.create_connection(("127.0.0.1", int(server.rsplit(":", 1)[1])), 10) as sock:
            sock.sendall(f"FOO{i} /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            while sock.recv(65536):
                pass
        httpx.get(f"{server}/no/such/path/{i}", timeout=10)
    series = _series(server)
    assert not [s for s in series if "FOO" in s or "/no/such" in s], series
    assert len(series) - before <= 4, series  # one "other" and one "unmatched" series, or so
    assert any('method="other"' in s for s in series), series


def test_a_last_event_id_no_row_can_hold_does_not_break_the_stream(server) -> None:
    spec = {"dataset": "digits", "dataset_update": "permute", "splits": 2, "epochs": 2}
    with httpx.Client(base_url=server, headers=AUTH, timeout=30) as client:
        exp = client.post("/v1/experiments", json=spec).json()["id"]
        for last_event_id in (
            b"99999999999999999999.1", b"1.99999999999999999999", "².1".encode("latin-1"), b"5"
        ):
            # The whole stream is read: a server error after the headers cuts it short.
            r = client.get(f"/v1/experiments/{exp}/events", headers={"Last-Event-ID": last_event_id})
            assert r.status_code == 200
            assert "event: status" in r.text, (last_event_id, r.text)
