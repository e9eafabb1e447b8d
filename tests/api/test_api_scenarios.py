"""The scenario fields (heads, hidden, joint) through the API: accepted, stored with the
spec, refused with a 422 naming the field, and sweepable."""

from __future__ import annotations

import pytest

PROBLEMS = [
    ({"heads": "many"}, "heads", "choose one of 'shared' or 'multi'"),
    ({"heads": "multi"}, "heads", "needs a task stream"),
    ({"model": "lenet", "hidden": [10]}, "hidden", "only mlp takes hidden widths"),
    ({"hidden": [0]}, "hidden.0", "greater than or equal to 1"),
    ({"hidden": "400,x"}, "hidden", "such as 400,400"),
    ({"joint": True}, "joint", "needs dataset_update permute or switch"),
    ({"joint": True, "dataset_update": "switch", "ewc": {}}, "joint", "takes no method, got ewc"),
]


@pytest.mark.parametrize(("body", "field", "message"), PROBLEMS)
def test_bad_scenario_is_422_naming_the_field(client, admin, body, field, message) -> None:
    resp = client.post("/v1/experiments", json=body, headers=admin)
    assert resp.status_code == 422, resp.text
    problems = resp.json()["detail"]
    assert any(p["field"] == field and message in p["message"] for p in problems), problems


def test_scenario_fields_are_stored_and_swept(client, admin) -> None:
    body = {"dataset": "digits", "dataset_update": "switch", "splits": 2, "epochs": 2,
            "heads": "multi", "hidden": [40, 40], "joint": True}  # fmt: skip
    resp = client.post("/v1/experiments", json=body, headers=admin)
    assert resp.status_code == 201, resp.text
    spec = resp.json()["spec"]
    assert (spec["heads"], spec["hidden"], spec["joint"]) == ("multi", [40, 40], True)
    assert client.post("/v1/experiments", json={}, headers=admin).json()["spec"]["hidden"] == [100, 100]
    sweep = {"base": {"dataset": "digits", "dataset_update": "switch", "splits": 2, "epochs": 2},
             "grid": {"heads": ["shared", "multi"], "joint": [False, True]}}  # fmt: skip
    resp = client.post("/v1/sweeps", json=sweep, headers=admin)
    assert resp.status_code == 201, resp.text
    specs = [client.get(f"/v1/experiments/{e}", headers=admin).json()["spec"]
             for e in resp.json()["experiment_ids"]]  # fmt: skip
    assert sorted((s["heads"], s["joint"]) for s in specs) == [
        ("multi", False), ("multi", True), ("shared", False), ("shared", True)]
    schema = client.get("/openapi.json").json()["components"]["schemas"]
    spec_schema = next(s for name, s in schema.items() if "heads" in s.get("properties", {}))
    assert {"heads", "hidden", "joint"} <= set(spec_schema["properties"])
