"""Issue 8 §3–§4: every size a request can make a worker allocate has a server limit (422),
and no input is a 500 — on SQLite and on PostgreSQL (`client` runs on both backends).

Each case is one class of input that used to crash a handler: Unicode digits in `ids`,
integers no row can hold (SQLite overflows at 2**63), a lone surrogate echoed in an error,
JSON nested deeper than the interpreter recurses, NUL bytes in stored text, and artifact
path components longer than a file name can be.
"""

from __future__ import annotations

import pytest

from store import artifacts as store_artifacts
from store.experiments import encode_cursor

HUGE = 2**63  # SQLite: "Python int too large to convert to SQLite INTEGER"


def _no_500(response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:500])


# §3 Limits -------------------------------------------------------------------------------


def test_synthetic_sizes_have_server_limits(client, admin) -> None:
    body = {
        "dataset": "synthetic", "epochs": 1,
        "synthetic": {"height": 100_000, "width": 100_000, "channels": 64,
                      "train_size": 10**9, "test_size": 10**9},
    }  # fmt: skip
    r = client.post("/v1/experiments", json=body, headers=admin)
    assert r.status_code == 422, r.text
    fields = {p["field"]: p["message"] for p in r.json()["detail"]}
    assert set(fields) == {
        "synthetic.height", "synthetic.width", "synthetic.channels",
        "synthetic.train_size", "synthetic.test_size",
    }  # fmt: skip
    assert "EWC_MAX_SYNTHETIC_SIDE" in fields["synthetic.height"]
    assert "EWC_MAX_SYNTHETIC_EXAMPLES" in fields["synthetic.train_size"]


def test_synthetic_total_size_and_batch_values_are_bounded(client, admin) -> None:
    # Each field fits, the whole dataset does not: 200 000 × 256 × 256 values.
    big = {"height": 256, "width": 256, "channels": 1, "train_size": 100_000, "test_size": 100_000}
    r = client.post(
        "/v1/experiments", json={"dataset": "synthetic", "epochs": 1, "synthetic": big}, headers=admin
    )
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["field"] == "synthetic"
    assert "EWC_MAX_SYNTHETIC_VALUES" in r.json()["detail"][0]["message"]
    # One step of 8192 inputs of 256 × 256 × 4 values is too much; a small batch is fine.
    wide = {"height": 256, "width": 256, "channels": 4, "train_size": 20, "test_size": 20}
    body = {"dataset": "synthetic", "epochs": 1, "synthetic": wide, "batch_size": 8192}
    r = client.post("/v1/experiments", json=body, headers=admin)
    assert r.status_code == 422, r.text
    assert [p["field"] for p in r.json()["detail"]] == ["batch_size"]
    assert "EWC_MAX_BATCH_VALUES" in r.json()["detail"][0]["message"]
    r = client.post("/v1/experiments", json={**body, "batch_size": 32}, headers=admin)
    assert r.status_code == 201, r.text


def test_limits_follow_the_settings(make_client, admin) -> None:
    client = make_client(max_synthetic_side=16)
    body = {"dataset": "synthetic", "epochs": 1, "synthetic": {"height": 17, "width": 16}}
    r = client.post("/v1/experiments", json=body, headers=admin)
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "synthetic.height", r.text


def test_sweep_points_are_held_to_the_limits(client, admin) -> None:
    body = {
        "base": {"dataset": "synthetic", "epochs": 1},
        "grid": {"synthetic.height": [28, 100_000]},
    }
    r = client.post("/v1/sweeps", json=body, headers=admin)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["field"] == "grid.synthetic.height"


# §4 No 500 -------------------------------------------------------------------------------


@pytest.mark.parametrize("ids", ["1,²", "٣", "1,99999999999999999999", "1,0", "1,-2", "1,x"])
def test_compare_ids_are_parsed_strictly(client, admin, ids) -> None:
    r = client.get("/v1/experiments/compare", params={"ids": ids}, headers=admin)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["field"] == "ids"


def test_integers_beyond_any_row_are_422(client, admin) -> None:
    r = client.get("/v1/experiments", params={"cursor": encode_cursor(HUGE)}, headers=admin)
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "cursor", r.text
    r = client.get("/v1/sweeps", params={"before": HUGE}, headers=admin)
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "before", r.text
    for path in (f"/v1/experiments/{HUGE}", f"/v1/sweeps/{HUGE}", f"/v1/experiments/{HUGE}/events"):
        _no_500(client.get(path, headers=admin))


def test_a_lone_surrogate_is_refused_and_the_answer_can_be_sent(client, admin) -> None:
    headers = {**admin, "Content-Type": "application/json"}
    for body in (
        '{"grid": {"\\ud800": [1]}}',
        '{"grid": {"seed": ["\\udfff"]}}',
        '{"base": {"name": "\\ud800"}, "grid": {"seed": [1]}}',
        '{"name": "\\ud800", "grid": {"seed": [1]}}',
        '{"\\ud800": 1, "grid": {"seed": [1]}}',  # echoed as the unknown field's name
    ):
        r = client.post("/v1/sweeps", content=body, headers=headers)
        assert r.status_code == 422, (body, r.status_code, r.text)
    r = client.post("/v1/experiments", content='{"name": "a\\ud800"}', headers=headers)
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "name", r.text


def test_deeply_nested_sweep_json_is_422(client, admin) -> None:
    headers = {**admin, "Content-Type": "application/json"}
    for depth in (40, 600, 900):
        nested = '{"a":' * depth + "1" + "}" * depth
        for body in (
            '{"base": {"x": ' + nested + '}, "grid": {"seed": [1]}}',
            '{"grid": {"ewc": [' + nested + "]}}",
        ):
            r = client.post("/v1/sweeps", content=body, headers=headers)
            assert r.status_code == 422, (depth, r.status_code, r.text[:300])
            assert "nested more than" in r.text


@pytest.mark.parametrize(
    "body, field",
    [
        ({"name": "a\x00b"}, "name"),
        ({"tags": ["ok", "a\x00"]}, "tags.1"),
    ],
)
def test_nul_bytes_in_experiment_text_are_refused_on_every_backend(client, admin, spec, body, field) -> None:
    r = client.post("/v1/experiments", json={**spec, **body}, headers=admin)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["field"] == field
    assert "NUL" in r.json()["detail"][0]["message"]


def test_nul_bytes_in_sweep_names_and_filters_are_refused(client, admin, spec) -> None:
    r = client.post("/v1/sweeps", json={"base": spec, "grid": {"seed": [1]}, "name": "s\x00"}, headers=admin)
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "name", r.text
    for param in ("tag", "owner"):
        r = client.get("/v1/experiments", params={param: "a\x00"}, headers=admin)
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == param, r.text


def test_artifact_path_components_are_bounded(client, admin, spec, tmp_path) -> None:
    exp = client.post("/v1/experiments", json=spec, headers=admin).json()["id"]
    folder = store_artifacts.experiment_dir(client.app.state.settings.resolved_artifacts_dir(), exp)
    (folder / "task-1").mkdir(parents=True)
    (folder / "model.keras").write_bytes(b"model")
    for path in ("a" * 256, "task-1/" + "é" * 128, "a" * 256 + ".zip", "/".join(["a"] * 600)):
        r = client.get(f"/v1/experiments/{exp}/artifacts/{path}", headers=admin)
        assert r.status_code == 422, (len(path), r.status_code, r.text[:200])
        assert r.json()["detail"][0]["field"] == "path"
    assert client.get(f"/v1/experiments/{exp}/artifacts/{'a' * 255}", headers=admin).status_code == 404
    assert client.get(f"/v1/experiments/{exp}/artifacts/model.keras", headers=admin).status_code == 200
