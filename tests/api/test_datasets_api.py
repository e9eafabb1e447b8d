"""`/v1/datasets` on SQLite and PostgreSQL: an upload is listed (shape, classes, size,
owner, checksum) for every user and stored in the artifact store by its sha256; a spec
naming `user:<name>` is resolved at submission (sweeps too), or refused with a 422 naming
the field (unknown name, a model that cannot take its shape, too many splits); deleting
is for its owner or an admin, and refused while a queued or running job uses it."""

from __future__ import annotations

import hashlib

import numpy as np

from store.db import unit_of_work
from store.models import Experiment, JobStatus
from tests.fixtures.npz import blobs, npz_bytes, upload

ARRAYS = {**blobs(shape=(8, 8), classes=4, train=40, test=12),
          "class_names": np.array(["a", "b", "c", "d"])}  # fmt: skip
DATA = npz_bytes(**ARRAYS)
SPEC = {"dataset": "user:blobs", "dataset_update": "increment", "splits": 2, "epochs": 2}


def test_an_upload_is_listed_stored_and_shared(client, user_headers, make_settings) -> None:
    ann, bob = user_headers("ann"), user_headers("bob")
    resp = upload(client, ann, "blobs", DATA, description="four blobs")
    assert resp.status_code == 201, resp.text
    got = resp.json()
    sha = hashlib.sha256(DATA).hexdigest()
    assert {k: v for k, v in got.items() if k != "created_at"} == {
        "name": "blobs", "use_as": "user:blobs", "owner": "ann", "checksum": sha,
        "size_bytes": len(DATA), "input_shape": [8, 8], "num_classes": 4,
        "class_names": ["a", "b", "c", "d"], "train_examples": 40, "test_examples": 12,
        "description": "four blobs",
    }  # fmt: skip
    assert client.get("/v1/datasets", headers=bob).json()["items"] == [got]
    assert client.get("/v1/datasets/blobs", headers=bob).json() == got
    missing = client.get("/v1/datasets/nope", headers=bob)
    assert missing.status_code == 404 and "no dataset named 'nope'" in missing.json()["detail"]
    store = make_settings().artifact_store()
    assert store.get_bytes(f"datasets/{sha}.npz") == DATA
    # the same file under a second name is stored once
    assert upload(client, bob, "blobs-again", DATA).status_code == 201
    assert [o.key for o in store.list("datasets")] == [f"datasets/{sha}.npz"]


def test_a_spec_naming_an_upload_is_resolved_at_submission(client, user_headers) -> None:
    ann, bob = user_headers("ann"), user_headers("bob")
    assert upload(client, ann, "blobs", DATA).status_code == 201
    resp = client.post("/v1/experiments", headers=bob, json=SPEC)  # any user may use it
    assert resp.status_code == 201, resp.text
    assert resp.json()["spec"]["user_dataset"] == {
        "checksum": hashlib.sha256(DATA).hexdigest(), "input_shape": [8, 8, 1], "num_classes": 4}
    forged = {**SPEC, "user_dataset": {"checksum": "0" * 64, "input_shape": [1, 1, 1],
                                       "num_classes": 2}}  # fmt: skip
    resp = client.post("/v1/experiments", headers=bob, json=forged)  # the server's word counts
    assert resp.status_code == 201
    assert resp.json()["spec"]["user_dataset"]["num_classes"] == 4


def test_a_spec_the_upload_cannot_serve_is_a_422_naming_the_field(client, user_headers) -> None:
    ann = user_headers("ann")
    assert upload(client, ann, "blobs", DATA).status_code == 201
    cases = [
        ({**SPEC, "dataset": "user:nope"}, "dataset", "no uploaded dataset named 'nope'"),
        ({**SPEC, "model": "lenet"}, "model", "lenet needs inputs of at least 28x28, user:blobs is 8x8"),
        ({**SPEC, "splits": 5, "epochs": 5}, "splits", "5 is more than the 4 classes of user:blobs"),
        ({**SPEC, "dataset": "user:has space"}, "dataset", "is not a dataset name"),
    ]
    for spec, field, words in cases:
        resp = client.post("/v1/experiments", headers=ann, json=spec)
        assert resp.status_code == 422, (spec, resp.text)
        [problem] = resp.json()["detail"]
        assert problem["field"] == field and words in problem["message"], problem


def test_a_sweep_over_an_upload(client, user_headers) -> None:
    ann = user_headers("ann")
    assert upload(client, ann, "blobs", DATA).status_code == 201
    resp = client.post("/v1/sweeps", headers=ann, json={"base": SPEC, "grid": {"seed": [0, 1]}})
    assert resp.status_code == 201, resp.text
    resp = client.post("/v1/sweeps", headers=ann,
                       json={"base": SPEC, "grid": {"dataset": ["user:blobs", "user:gone"]}})
    assert resp.status_code == 422
    assert [p["field"] for p in resp.json()["detail"]] == ["grid.dataset"]
    assert "no uploaded dataset named 'gone'" in resp.json()["detail"][0]["message"]


def test_delete_is_for_the_owner_or_an_admin_and_not_while_jobs_use_it(
    client, user_headers, admin, session_factory, make_settings
) -> None:
    ann, bob = user_headers("ann"), user_headers("bob")
    assert upload(client, ann, "blobs", DATA).status_code == 201
    job = client.post("/v1/experiments", headers=bob, json=SPEC).json()["id"]
    resp = client.delete("/v1/datasets/blobs", headers=bob)
    assert resp.status_code == 403
    assert "only its owner or an admin may delete it" in resp.json()["detail"]
    resp = client.delete("/v1/datasets/blobs", headers=ann)
    assert resp.status_code == 409
    assert f"used by queued or running experiments ({job})" in resp.json()["detail"]
    with unit_of_work(session_factory) as s:  # running counts too
        s.get(Experiment, job).status = JobStatus.running
    assert client.delete("/v1/datasets/blobs", headers=admin).status_code == 409
    with unit_of_work(session_factory) as s:
        s.get(Experiment, job).status = JobStatus.succeeded
    assert client.delete("/v1/datasets/blobs", headers=admin).status_code == 204
    assert client.get("/v1/datasets/blobs", headers=ann).status_code == 404
    assert make_settings().artifact_store().list("datasets") == []  # its file went too
    resp = client.post("/v1/experiments", headers=bob, json=SPEC)
    assert resp.status_code == 422 and resp.json()["detail"][0]["field"] == "dataset"
    assert client.delete("/v1/datasets/blobs", headers=ann).status_code == 404
    # the owner may delete their own; a file another name still uses stays
    assert upload(client, ann, "one", DATA).status_code == 201
    assert upload(client, bob, "two", DATA).status_code == 201
    assert client.delete("/v1/datasets/one", headers=ann).status_code == 204
    assert len(make_settings().artifact_store().list("datasets")) == 1


def test_a_run_on_an_upload_is_re_run_on_it_or_on_a_built_in(client, user_headers) -> None:
    ann = user_headers("ann")
    assert upload(client, ann, "blobs", DATA).status_code == 201
    first = client.post("/v1/experiments", headers=ann, json=SPEC).json()
    again = client.post(f"/v1/experiments/{first['id']}/rerun", headers=ann, json={})
    assert again.status_code == 201, again.text
    assert again.json()["spec"]["user_dataset"] == first["spec"]["user_dataset"]
    other = client.post(f"/v1/experiments/{first['id']}/rerun", headers=ann,
                        json={"overrides": {"dataset": "digits"}})  # fmt: skip
    assert other.status_code == 201, other.text
    assert other.json()["spec"]["dataset"] == "digits"
    assert other.json()["spec"]["user_dataset"] is None
