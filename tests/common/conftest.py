"""Fixtures for the artifact store: a REAL S3 endpoint (moto's standalone HTTP server, a
subprocess on a free port: tests/harness/s3.py) and a `store` that every test gets twice,
local and S3.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.common.storage_helpers import ACCESS_KEY, SECRET
from tests.harness.s3 import moto_server


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """http://127.0.0.1:<port> of a moto S3 server running for this test session."""
    with moto_server(tmp_path_factory.mktemp("moto") / "moto.log") as endpoint:
        yield endpoint


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, moto_endpoint: str) -> str:
    """The standard AWS_* variables pointing at the moto server; returns the endpoint."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    return moto_endpoint


@pytest.fixture
def bucket(aws_env: str) -> str:
    """A new, empty bucket on the moto server."""
    import boto3

    name = f"ewc-{uuid.uuid4().hex[:16]}"
    boto3.client("s3").create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_store(bucket: str):
    from common.storage import open_store

    return open_store(f"s3://{bucket}/team/artifacts")


@pytest.fixture
def local_store(tmp_path: Path):
    from common.storage import open_store

    return open_store(tmp_path / "artifacts")


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest):
    """The same test on both backends."""
    return request.getfixturevalue(f"{request.param}_store")
