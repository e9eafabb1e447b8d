"""Bad submissions get a 4xx naming the field and what is allowed — never a 500."""

from __future__ import annotations

import pytest

SPEC_PROBLEMS = [
    ({"model": "vgg"}, "model", "choose one of 'mlp', 'lenet' or 'cifarnet'"),
    ({"dataset": "digits", "dataset_update": "increment", "splits": 11, "epochs": 20},
     "splits", "11 is more than the 10 classes"),
    ({"dataset_update": "permute", "splits": 5, "epochs": 3}, "epochs", "must be ≥ 5"),
    ({"ewc": {"lambda": -1}}, "ewc.lambda", "greater than or equal to 0"),
    ({"learning_rate": "NaN"}, "learning_rate", "finite number"),
    ({"color": "red"}, "color", "unknown field"),
    ({"ewc": {"lamda": 1}}, "ewc.lamda", "unknown field"),
    ({"epochs": 501}, "epochs", "limit of 500 (EWC_MAX_EPOCHS)"),
    ({"batch_size": 10_000}, "batch_size", "limit of 8192"),
    ({"ewc": {"samples": 20_000}}, "ewc.samples", "limit of 10000 (EWC_MAX_SAMPLES)"),
    ({"time_limit_s": 10**9}, "time_limit_s", "EWC_JOB_TIME_LIMIT_S"),
    ({"priority": 1000}, "priority", "less than or equal to 100"),
]


@pytest.mark.parametrize(("body", "field", "message"), SPEC_PROBLEMS)
def test_invalid_spec_is_422_naming_the_field(client, admin, body, field, message) -> None:
    resp = client.post("/v1/experiments", json=body, headers=admin)
    assert resp.status_code == 422, resp.text
    problems = resp.json()["detail"]
    assert any(p["field"] == field and message in p["message"] for p in problems), problems
    assert client.get("/v1/experiments", headers=admin).json()["items"] == []


@pytest.mark.parametrize(
    "raw", [b"{not json", b"", b"[1, 2]", b"null", b'"spec"', b'{"learning_rate": NaN}']
)
def test_malformed_bodies_are_422_not_500(client, admin, raw) -> None:
    headers = {**admin, "Content-Type": "application/json"}
    resp = client.post("/v1/experiments", content=raw, headers=headers)
    assert resp.status_code == 422, resp.text
    assert resp.json()["detail"][0]["field"] in ("body", "learning_rate")


def test_server_bounds_follow_the_settings(make_client, admin) -> None:
    client = make_client(max_epochs=10, max_splits=3)
    body = {"dataset_update": "permute", "splits": 4, "epochs": 12}
    problems = client.post("/v1/experiments", json=body, headers=admin).json()["detail"]
    assert {p["field"] for p in problems} == {"epochs", "splits"}
    assert client.post("/v1/experiments", json={"epochs": 10}, headers=admin).status_code == 201


def test_body_over_the_limit_is_413(make_client, admin, spec) -> None:
    client = make_client(max_body_bytes=1000)
    big = {**spec, "name": "x" * 1500}  # too big before it is too long
    resp = client.post("/v1/experiments", json=big, headers=admin)
    assert resp.status_code == 413 and "1000 bytes" in resp.json()["detail"]

    def chunks():  # no Content-Length: counted while streaming
        for _ in range(20):
            yield b" " * 100

    headers = {**admin, "Content-Type": "application/json"}
    resp = client.post("/v1/experiments", content=chunks(), headers=headers)
    assert resp.status_code == 413
    assert client.post("/v1/experiments", json=spec, headers=admin).status_code == 201


def test_active_job_cap_is_429(make_client, user_headers, admin, spec) -> None:
    client = make_client(max_active_jobs_per_user=2)
    ann = user_headers("ann")
    ids = [client.post("/v1/experiments", json=spec, headers=ann).json()["id"] for _ in range(2)]
    resp = client.post("/v1/experiments", json=spec, headers=ann)
    assert resp.status_code == 429
    assert "the cap is 2 per user" in resp.json()["detail"]
    # another user is not affected; cancelling frees a slot
    assert client.post("/v1/experiments", json=spec, headers=admin).status_code == 201
    client.post(f"/v1/experiments/{ids[0]}/cancel", headers=ann)
    assert client.post("/v1/experiments", json=spec, headers=ann).status_code == 201


HUGE_ID_PATHS = [
    ("GET", "/v1/experiments/{id}"),
    ("GET", "/v1/experiments/{id}/metrics"),
    ("POST", "/v1/experiments/{id}/cancel"),
    ("GET", "/v1/experiments/{id}/events"),
    ("GET", "/v1/experiments/{id}/artifacts"),
    ("GET", "/v1/experiments/{id}/plots/curves.png"),
    ("GET", "/v1/experiments/{id}/export.csv"),
    ("GET", "/v1/sweeps/{id}"),
    ("GET", "/v1/sweeps/{id}/plot.png"),
]


@pytest.mark.parametrize("bad_id", ["2147483648", "14261492165861564416", "0", "-3"])
def test_ids_out_of_range_are_422_not_a_database_error(client, admin, bad_id) -> None:
    """Found by schemathesis: an id beyond PostgreSQL's integer made a 503 ("integer out of
    range"); ids are now bounded in the path, so the answer is a 422 naming the field."""
    for method, template in HUGE_ID_PATHS:
        path = template.replace("{id}", bad_id)
        resp = client.request(method, path, headers=admin)
        assert resp.status_code == 422, (path, resp.status_code, resp.text)
        assert resp.json()["detail"][0]["field"] in ("experiment_id", "sweep_id"), resp.text
