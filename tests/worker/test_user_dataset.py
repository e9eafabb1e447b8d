"""A job trained on an uploaded dataset, through the API and the real worker: the file is
uploaded and the spec submitted over the app (TestClient, real database), a worker
"host" (its own data folder and dataset cache, the shared artifact store) claims the job
and `worker.runner.run_job` trains it. Every stream with a model built for the upload's
shape and a method: permute (mlp on flat features, EWC), increment (lenet on 28x28 uint8,
SI), switch (mlp on 8x8x3 with class names, replay, one head per task; cifarnet takes
any image shape too, and costs more). The file is downloaded once
per host and kept by its sha256; a host that lacks it while the store lost it fails the
job saying so."""

# ruff: noqa: F811 - the tests take the fixtures imported above as arguments

from __future__ import annotations

import hashlib

import numpy as np
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
from worker.datasets import dataset_cache
from worker.runner import run_job

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

RUN = {"epochs": 2, "batch_size": 16, "learning_rate": 0.01, "seed": 0}
CASES = [
    ("permute-mlp-ewc", blobs(shape=(20,), classes=3, train=150, test=60),
     {"dataset_update": "permute", "splits": 2, "model": "mlp", "ewc": {}}, (1, 20, 1)),
    ("increment-lenet-si", blobs(shape=(28, 28), classes=4, train=120, test=40, dtype=np.uint8),
     {"dataset_update": "increment", "splits": 2, "model": "lenet", "si": {}}, (28, 28, 1)),
    ("switch-mlp-replay", {**blobs(shape=(8, 8, 3), classes=4, train=120, test=40),
                           "class_names": np.array(["n", "e", "s", "w"])},
     {"dataset_update": "switch", "splits": 2, "model": "mlp", "heads": "multi",
      "replay": {}}, (8, 8, 3)),
]  # fmt: skip


def host(make_settings, tmp_path, name: str):
    """A worker host: its own data folder and dataset cache, the API's artifact store."""
    return make_settings(data_dir=tmp_path / name, artifacts_dir=tmp_path / "artifacts",
                         dataset_cache=tmp_path / name / "datasets", heartbeat_s=0.05)  # fmt: skip


def claim_and_run(session_factory, settings, worker: str = "w1"):
    with unit_of_work(session_factory) as s:
        job = claims.claim_next_job(s, ["cpu"], worker, 30, 3)
    assert job is not None
    return run_job(job, worker=worker, settings=settings, sessions=session_factory, device="CPU")


@pytest.mark.parametrize(("case", "arrays", "stream", "shape"), CASES, ids=[c[0] for c in CASES])
def test_a_job_on_an_uploaded_dataset_trains_through_the_api(
    case, arrays, stream, shape, make_client, user_headers, make_settings, session_factory,
    tmp_path,
) -> None:
    client = make_client(artifacts_dir=tmp_path / "artifacts")
    ann, bob = user_headers("ann"), user_headers("bob")
    data = npz_bytes(**arrays)
    assert upload(client, ann, "mine", data).status_code == 201
    resp = client.post("/v1/experiments", headers=bob, json={"dataset": "user:mine", **stream, **RUN})
    assert resp.status_code == 201, resp.text
    exp_id = resp.json()["id"]
    assert resp.json()["spec"]["user_dataset"]["input_shape"] == list(shape)

    settings = host(make_settings, tmp_path, "host-a")
    outcome = claim_and_run(session_factory, settings)
    assert outcome.status is JobStatus.succeeded, outcome.error
    got = client.get(f"/v1/experiments/{exp_id}", headers=bob).json()
    assert got["status"] == "succeeded" and got["summary"]["average_accuracy"] is not None
    matrix = client.get(f"/v1/experiments/{exp_id}/metrics", headers=bob).json()["accuracy_matrix"]
    assert len(matrix) == 2 and all(len(row) == 2 for row in matrix)
    sha = hashlib.sha256(data).hexdigest()
    assert sha in dataset_cache(settings)  # kept on this host by its checksum
    if case.startswith("permute"):  # the blobs are easy: task 1 is learnt well above chance
        assert matrix[0][0] > 0.6, matrix


def test_the_file_is_fetched_once_per_host_and_a_lost_file_fails_the_job(
    make_client, user_headers, make_settings, session_factory, tmp_path
) -> None:
    client = make_client(artifacts_dir=tmp_path / "artifacts")
    ann = user_headers("ann")
    data = npz_bytes(**blobs(shape=(6, 6), classes=2, train=40, test=10))
    sha = hashlib.sha256(data).hexdigest()
    assert upload(client, ann, "tiny", data).status_code == 201
    spec = {"dataset": "user:tiny", "epochs": 1, "dataset_update": "full"}
    ids = [client.post("/v1/experiments", headers=ann, json=spec).json()["id"] for _ in range(3)]

    a = host(make_settings, tmp_path, "host-a")
    assert claim_and_run(session_factory, a).status is JobStatus.succeeded
    cached = dataset_cache(a).path_for(sha)
    assert cached.read_bytes() == data
    a.artifact_store().delete(f"datasets/{sha}.npz")  # the store lost it (not via the API)
    assert claim_and_run(session_factory, a).status is JobStatus.succeeded  # from the cache

    outcome = claim_and_run(session_factory, host(make_settings, tmp_path, "host-b"))
    assert outcome.status is JobStatus.failed
    got = client.get(f"/v1/experiments/{ids[2]}", headers=ann).json()
    assert got["status"] == "failed"
    assert "dataset user:tiny: its file (sha256" in got["error"]
    assert "is not in the artifact store" in got["error"] and "upload it again" in got["error"]
