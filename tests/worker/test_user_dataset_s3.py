"""An uploaded dataset in a REAL S3 endpoint (moto's server, tests/harness/s3.py): the API
stores the upload in the bucket under `datasets/<sha256>.npz`, a worker host with an empty
cache downloads it from there and trains (run_job), a second host does the same on its
own, and deleting the dataset removes the object."""

# ruff: noqa: F811 - the tests take the fixtures imported below as arguments

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator

import pytest

from store import claims
from store.db import unit_of_work
from store.models import JobStatus
from tests.fixtures.api_client import (  # noqa: F401 - the API's fixtures, used here
    make_client,
    make_settings,
    user_headers,
)
from tests.fixtures.npz import blobs, npz_bytes, upload
from tests.harness.s3 import aws_variables, bucket_keys, create_bucket, moto_server
from worker.datasets import dataset_cache
from worker.runner import run_job

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture(scope="module")
def moto(tmp_path_factory) -> Iterator[str]:
    with moto_server(tmp_path_factory.mktemp("moto") / "moto.log") as url:
        yield url


@pytest.fixture
def bucket(moto: str, monkeypatch: pytest.MonkeyPatch) -> str:
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    for name, value in aws_variables(moto).items():
        monkeypatch.setenv(name, value)
    return create_bucket(moto)


def test_an_upload_in_s3_trains_on_two_hosts(
    bucket, moto, make_client, user_headers, make_settings, session_factory, tmp_path
) -> None:
    url = f"s3://{bucket}/team"
    client = make_client(artifacts_url=url)
    ann = user_headers("ann")
    data = npz_bytes(**blobs(shape=(6, 6), classes=3, train=60, test=15))
    sha = hashlib.sha256(data).hexdigest()
    assert upload(client, ann, "s3set", data).status_code == 201
    assert f"team/datasets/{sha}.npz" in bucket_keys(moto, bucket)
    spec = {"dataset": "user:s3set", "dataset_update": "switch", "splits": 3, "epochs": 3}
    ids = [client.post("/v1/experiments", headers=ann, json=spec).json()["id"] for _ in range(2)]

    for host in ("host-a", "host-b"):
        settings = make_settings(data_dir=tmp_path / host, artifacts_url=url,
                                 dataset_cache=tmp_path / host / "datasets", heartbeat_s=0.05)  # fmt: skip
        with unit_of_work(session_factory) as s:
            job = claims.claim_next_job(s, ["cpu"], host, 30, 3)
        assert job is not None
        outcome = run_job(job, worker=host, settings=settings, sessions=session_factory,
                          device="CPU")  # fmt: skip
        assert outcome.status is JobStatus.succeeded, outcome.error
        assert dataset_cache(settings).path_for(sha).read_bytes() == data
    for exp_id in ids:
        assert client.get(f"/v1/experiments/{exp_id}", headers=ann).json()["status"] == "succeeded"

    assert client.delete("/v1/datasets/s3set", headers=ann).status_code == 204
    assert f"team/datasets/{sha}.npz" not in bucket_keys(moto, bucket)
