"""`ewc artifacts init` (docker compose's `createbucket` one-shot) on a REAL S3 endpoint
(moto's standalone server, tests/harness/s3.py): it creates the bucket of
EWC_ARTIFACTS_URL, a second run finds it and changes nothing, the store then takes writes;
on the local store it creates the folder; an endpoint that never answers ends it with
exit 1 and the store's message (no secret) once `--wait` is spent."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from cli.main import app as ewc_app
from common.settings import get_settings
from common.storage import open_store
from tests.harness.processes import free_port
from tests.harness.s3 import SECRET, aws_variables, bucket_keys, moto_server

runner = CliRunner()


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory) -> Iterator[str]:
    with moto_server(tmp_path_factory.mktemp("moto") / "moto.log") as url:
        yield url


def init(url: str, *args: str, **env: str):
    get_settings.cache_clear()  # the command reads EWC_* as a fresh process would
    try:
        return runner.invoke(ewc_app, ["artifacts", "init", *args],
                             env={"EWC_ARTIFACTS_URL": url, **env})
    finally:
        get_settings.cache_clear()


def test_init_creates_the_bucket_once(endpoint, monkeypatch):
    for name, value in aws_variables(endpoint).items():
        monkeypatch.setenv(name, value)
    bucket = f"ewc-{uuid.uuid4().hex[:12]}"
    url = f"s3://{bucket}/artifacts"

    first = init(url)
    assert first.exit_code == 0, first.output
    assert first.output.strip() == f"bucket s3://{bucket} created (artifacts at {url})"
    again = init(url)
    assert again.exit_code == 0, again.output
    assert again.output.strip() == f"bucket s3://{bucket} already exists (artifacts at {url})"

    open_store(url).put_bytes("experiments/1/model.keras", b"model")
    assert bucket_keys(endpoint, bucket) == ["artifacts/experiments/1/model.keras"]
    assert init(url).exit_code == 0  # a bucket with objects in it is left as it is
    assert bucket_keys(endpoint, bucket) == ["artifacts/experiments/1/model.keras"]


def test_init_on_the_local_store_creates_the_folder(tmp_path):
    folder = tmp_path / "artifacts"
    result = init(str(folder))
    assert result.exit_code == 0, result.output
    assert folder.is_dir() and f"artifacts folder {folder} is ready" in result.output


def test_init_gives_up_on_an_endpoint_that_never_answers(monkeypatch):
    for name, value in aws_variables(f"http://127.0.0.1:{free_port()}").items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    result = init("s3://ewc/artifacts", "--wait", "1")
    assert result.exit_code == 1
    assert "cannot reach the S3 endpoint" in result.output
    assert SECRET not in result.output
