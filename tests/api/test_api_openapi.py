"""The OpenAPI document says what a generated client needs (issue 14): one 422 model, names
a person would choose, binary bodies as binary, typed documents, one cursor style, and
which operations need no token. The generator itself runs in
tests/e2e/test_generated_client.py."""

from __future__ import annotations

import re

import pytest

from api.app import create_app
from common.settings import Settings


@pytest.fixture(scope="module")
def document() -> dict:
    return create_app(Settings(_env_file=None)).openapi()


def operations(document: dict):
    for path, ops in document["paths"].items():
        for method, op in ops.items():
            yield path, method, op


def refs(node) -> list[str]:
    if isinstance(node, dict):
        return ([node["$ref"]] if "$ref" in node else []) + [r for v in node.values() for r in refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in refs(v)]
    return []


def test_every_422_is_the_problem_list_and_no_title_collides(document):
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    titles = [s.get("title", name) for name, s in schemas.items()]
    assert len(titles) == len(set(titles)), titles
    with422 = [(p, op) for p, _, op in operations(document) if "422" in op["responses"]]
    assert len(with422) >= 17
    for path, op in with422:
        schema = op["responses"]["422"]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/ProblemList"}, path
    assert all(r.removeprefix("#/components/schemas/") in schemas for r in refs(document))


def test_operation_ids_are_chosen_unique_and_tagged(document):
    ids = [op["operationId"] for _, _, op in operations(document)]
    assert len(ids) == len(set(ids)) >= 22  # more as features land (logs, datasets, ...)
    assert all(re.fullmatch(r"[a-z]+(_[a-z]+)*", i) for i in ids), ids
    assert {"submit_experiment", "list_experiments", "download_artifact", "compare_experiments",
            "list_sweeps", "healthz"} <= set(ids)  # fmt: skip
    assert all(op.get("tags") for _, _, op in operations(document))
    assert {t["name"] for t in document["tags"]} == {
        t for _, _, op in operations(document) for t in op["tags"]
    }
    comparison = document["paths"]["/v1/experiments/compare"]["get"]["responses"]["200"]
    assert comparison["content"]["application/json"]["schema"]["$ref"].endswith("/Comparison")


def test_files_are_binary_and_exports_declared(document):
    paths = document["paths"]
    download = paths["/v1/experiments/{experiment_id}/artifacts/{path}"]["get"]["responses"]["200"]
    assert list(download["content"]) == ["application/octet-stream", "application/zip"]
    binary = {"type": "string", "format": "binary"}
    assert all(c["schema"] == binary for c in download["content"].values())
    for png in ("/v1/experiments/{experiment_id}/plots/curves.png",
                "/v1/experiments/{experiment_id}/plots/accuracy-matrix.png",
                "/v1/sweeps/{sweep_id}/plot.png"):  # fmt: skip
        assert paths[png]["get"]["responses"]["200"]["content"] == {"image/png": {"schema": binary}}
    csv = paths["/v1/experiments/{experiment_id}/export.csv"]["get"]["responses"]["200"]
    assert csv["content"] == {"text/csv": {"schema": {"type": "string"}}}
    export = paths["/v1/experiments/{experiment_id}/export.json"]["get"]["responses"]["200"]
    assert export["content"]["application/json"]["schema"]["$ref"].endswith("/ExperimentExport")
    table = paths["/v1/experiments/table"]["get"]
    content = table["responses"]["200"]["content"]
    assert content["text/csv"] == {"schema": {"type": "string"}}
    assert content["application/json"]["schema"]["items"] == {"$ref": "#/components/schemas/TableRow"}
    assert "X-Next-Cursor" in table["responses"]["200"]["headers"]
    assert {"filter", "order_by", "cursor", "format"} <= {p["name"] for p in table["parameters"]}


def test_stored_documents_are_typed(document):
    schemas = document["components"]["schemas"]
    spec = {"$ref": "#/components/schemas/ExperimentSpec"}
    assert schemas["ExperimentOut"]["properties"]["spec"] == spec
    assert schemas["Metrics"]["properties"]["spec"] == spec
    assert schemas["SweepOut"]["properties"]["base_spec"] == spec
    assert schemas["SweepIn"]["properties"]["base"] == spec
    assert schemas["SweepIn"]["properties"]["grid"]["additionalProperties"]["type"] == "array"
    assert "$ref" in str(schemas["ExperimentOut"]["properties"]["summary"])
    assert schemas["Metrics"]["properties"]["timings"] == {"$ref": "#/components/schemas/Timings"}
    run = schemas["SweepOut"]["properties"]["experiments"]["items"]
    assert run == {"$ref": "#/components/schemas/SweepRun"}


def test_one_cursor_style_and_the_old_one_deprecated(document):
    for path in ("/v1/experiments", "/v1/experiments/table", "/v1/sweeps"):
        params = {p["name"]: p for p in document["paths"][path]["get"]["parameters"]}
        assert "cursor" in params and not params["cursor"].get("deprecated"), path
    sweeps = {p["name"]: p for p in document["paths"]["/v1/sweeps"]["get"]["parameters"]}
    assert sweeps["before"]["deprecated"] is True
    page = document["components"]["schemas"]["SweepList"]["properties"]
    assert "next_cursor" in page and page["next_before"]["deprecated"] is True


def test_probes_need_no_token_and_everything_else_does(document):
    assert document["security"] == [{"HTTPBearer": []}]
    for path, _, op in operations(document):
        if path.startswith("/v1/"):
            assert op["security"] == [{"HTTPBearer": []}], path
        else:
            assert op["security"] == [], path
