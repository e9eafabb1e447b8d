"""A method registered at run time (the test-only toy of `tests/continual_core/toy_method.py`)
goes through the service like a built-in one: the API accepts and validates its key
(422 naming `toy.<field>`), the worker's job function trains it, and the stored spec and
metrics come back. API and worker run in this process: the real app (TestClient) on a real
database, the real `worker.runner.run_job` on the claimed row."""

from __future__ import annotations

from continual_core.methods import registered
from store import claims
from store.db import unit_of_work
from store.models import JobStatus
from tests.continual_core.toy_method import Toy
from worker.runner import run_job

SPEC = {"dataset": "digits", "dataset_update": "permute", "splits": 2, "epochs": 2,
        "batch_size": 128}  # fmt: skip


def test_unregistered_method_key_is_a_422(client, user_headers) -> None:
    resp = client.post("/v1/experiments", json={**SPEC, "toy": {}}, headers=user_headers("ann"))
    assert resp.status_code == 422
    assert {"field": "toy", "message": "unknown field"} in resp.json()["detail"]


def test_toy_method_through_the_api_and_the_worker(
    client, user_headers, make_settings, session_factory
) -> None:
    ann = user_headers("ann")
    with registered(Toy):
        bad = client.post("/v1/experiments", json={**SPEC, "toy": {"scale": 0}}, headers=ann)
        assert bad.status_code == 422
        assert [d["field"] for d in bad.json()["detail"]] == ["toy.scale"]
        created = client.post(
            "/v1/experiments", json={**SPEC, "toy": {"decay": 0.001}}, headers=ann
        )
        assert created.status_code == 201, created.text
        exp_id = created.json()["id"]
        with unit_of_work(session_factory) as s:
            job = claims.claim_next_job(s, ["cpu"], "w1", 30, 3)
        assert job is not None and job.id == exp_id
        outcome = run_job(
            job, worker="w1", settings=make_settings(), sessions=session_factory, device="CPU"
        )
        assert outcome.status is JobStatus.succeeded, outcome.error
    got = client.get(f"/v1/experiments/{exp_id}", headers=ann).json()
    assert got["status"] == "succeeded"
    assert got["spec"]["toy"] == {"decay": 0.001, "scale": 1.0}
    metrics = client.get(f"/v1/experiments/{exp_id}/metrics", headers=ann).json()
    assert len(metrics["accuracy_matrix"]) == 2
