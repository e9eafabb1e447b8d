"""An S3 store that cannot be reached fails fast with `StorageUnavailable` (bounded
timeouts and retries, no hang), other failures are `StorageError`s, and no credential
ever shows in a message, a repr, a traceback or a log line."""

from __future__ import annotations

import logging
import socket
import threading
import time
import traceback
from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from common.settings import Settings
from common.storage import NotInStore, S3Store, StorageError, StorageUnavailable, open_store
from tests.common.storage_helpers import ACCESS_KEY, SECRET, free_port

TOKEN = "sEsSiOn-" + SECRET


def everything_said(exc: BaseException, caplog: pytest.LogCaptureFixture, *more: object) -> str:
    return "\n".join([str(exc), repr(exc), "".join(traceback.format_exception(exc)),
                      caplog.text, *map(repr, more)])


def assert_no_credentials(text: str) -> None:
    assert SECRET not in text and TOKEN not in text
    assert "sEcReT" not in text  # not even a part of one


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers (a hung endpoint)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(2)
    for conn in held:
        conn.close()
    server.close()


def test_a_refused_endpoint_is_unavailable_within_seconds(aws_env, monkeypatch, caplog) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    store = open_store("s3://bucket/prefix")  # the defaults: 3 attempts, 5 s to connect
    caplog.set_level(logging.DEBUG)
    for operation in (lambda: store.put_bytes("a/b", b"x"), lambda: store.get_bytes("a/b"),
                      lambda: store.list("a"), store.check, lambda: store.latest_checkpoint("a")):
        started = time.monotonic()
        with pytest.raises(StorageUnavailable, match="cannot reach the S3 endpoint") as caught:
            operation()
        assert time.monotonic() - started < 10
        assert caught.value.retryable and "s3://bucket/prefix" in str(caught.value)
        assert caught.value.__cause__ is None and caught.value.__suppress_context__
        assert_no_credentials(everything_said(caught.value, caplog, store))


def test_a_hung_endpoint_times_out(aws_env, monkeypatch, silent_port: int) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{silent_port}")
    store = S3Store("bucket", "p", connect_timeout_s=1, read_timeout_s=1, max_attempts=2)
    started = time.monotonic()
    with pytest.raises(StorageUnavailable, match="ReadTimeout"):
        store.get_bytes("x")
    assert 1 <= time.monotonic() - started < 8  # two tries of 1 s and a backoff, no hang


def test_credentials_in_an_endpoint_url_never_show(aws_env, monkeypatch, caplog) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://user:{SECRET}@127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_SESSION_TOKEN", TOKEN)
    store = S3Store("bucket", max_attempts=1)
    with pytest.raises(StorageUnavailable) as caught:
        store.put_bytes("k", b"x")
    assert_no_credentials(str(caught.value) + repr(caught.value) + repr(store) + store.url_for("k"))


def test_service_errors_become_storage_errors(aws_env, bucket, monkeypatch, caplog) -> None:
    monkeypatch.setenv("AWS_SESSION_TOKEN", TOKEN)
    caplog.set_level(logging.DEBUG)
    gone = open_store(f"s3://no-such-{bucket}/p")
    with pytest.raises(StorageError, match="NoSuchBucket") as caught:
        gone.put_bytes("k", b"x")
    assert not caught.value.retryable and not isinstance(caught.value, StorageUnavailable)
    assert_no_credentials(everything_said(caught.value, caplog, gone))
    with pytest.raises(NotInStore) as missing:
        open_store(f"s3://{bucket}/p").get_bytes("nothing/here")
    assert f"s3://{bucket}/p/nothing/here" in str(missing.value)
    assert_no_credentials(everything_said(missing.value, caplog))
    # A success is logged without credentials too (botocore's own debug lines included).
    open_store(f"s3://{bucket}/p").put_bytes("fine", b"x")
    assert_no_credentials(caplog.text)


def test_no_credentials_is_said_plainly(aws_env, monkeypatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance role to look for
    started = time.monotonic()
    with pytest.raises(StorageError, match="no AWS credentials found"):
        open_store("s3://bucket/p").get_bytes("k")
    assert time.monotonic() - started < 10


def test_credentials_in_the_artifacts_url_are_refused(monkeypatch) -> None:
    url = f"s3://{ACCESS_KEY}:{SECRET}@bucket/prefix"
    with pytest.raises(ValueError, match="credentials do not belong") as caught:
        open_store(url)
    assert_no_credentials(str(caught.value))
    monkeypatch.setenv("EWC_ARTIFACTS_URL", url)
    with pytest.raises(ValidationError) as invalid:
        Settings(_env_file=None)
    assert "must not hold credentials" in str(invalid.value)
    assert_no_credentials(str(invalid.value) + repr(invalid.value))
