"""The OpenAPI document as a client generator must read it (`/openapi.json`).

FastAPI's document is right about the routes; three things are fixed here, once, after it is
generated (`install_openapi`):

- every 422 is `ProblemList` ({"detail": [{"field", "message"}]}, what `api.errors` sends),
  never FastAPI's `HTTPValidationError` ({"loc", "msg", "type"}), which is removed;
- every `/v1` operation needs the bearer token (`security` at the top) and the probes say
  they need none (`security: []` on each);
- a stored spec is a reference to `ExperimentSpec` (the request body's model), so a
  generated client has one spec model, not one copy per response;
- the tags are described, in the order a reader meets them.

Operation ids, binary responses (`format: binary`) and typed bodies are declared on the
routes themselves (`api.routes`); `tests/api/test_api_openapi.py` holds the document to it.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from common.schemas import SPEC_SCHEMA_MARK, ProblemList

BEARER = "HTTPBearer"
_DEFAULT_422 = "#/components/schemas/HTTPValidationError"
_PROBLEMS = "#/components/schemas/ProblemList"

TAGS: list[dict[str, str]] = [
    {"name": "experiments", "description": "Submit, read, list and cancel experiments."},
    {"name": "events", "description": "Live progress as server-sent events."},
    {"name": "logs", "description": "A job's captured log lines and traceback, followed live."},
    {"name": "reports", "description": "Plots, comparison and exports of stored metrics."},
    {"name": "artifacts", "description": "Models, checkpoints and TensorBoard files."},
    {"name": "sweeps", "description": "Hyper-parameter grids and their statistics."},
    {"name": "datasets", "description": "Datasets of your own (.npz), used as user:<name>."},
    {"name": "webhooks", "description": "Your webhooks on experiment and sweep ends."},
    {"name": "queues", "description": "Queue depths and workers."},
    {"name": "health", "description": "Probes and Prometheus metrics (no token)."},
]

def binary(*media_types: str, description: str = "The file") -> dict[str, Any]:
    """A `responses` entry: a binary body in each of `media_types` (generated clients
    read bytes, never JSON)."""
    schema = {"type": "string", "format": "binary"}
    return {"description": description, "content": {m: {"schema": schema} for m in media_types}}


def text_body(media_type: str, description: str) -> dict[str, Any]:
    """A `responses` entry: a text body (generated clients read a str)."""
    return {"description": description, "content": {media_type: {"schema": {"type": "string"}}}}


#: `openapi_extra` of a route anyone may call: no token.
PUBLIC: dict[str, Any] = {"security": []}


def _problems_everywhere(node: Any) -> Any:
    """`node` with every reference to FastAPI's 422 model turned into `ProblemList`, and
    every stored spec (`common.schemas.StoredSpec`) into a reference to `ExperimentSpec`."""
    if isinstance(node, dict):
        if node.get("$ref") == _DEFAULT_422:
            return {**node, "$ref": _PROBLEMS}
        if SPEC_SCHEMA_MARK in node:
            return {"$ref": f"#/components/schemas/{node[SPEC_SCHEMA_MARK]}"}
        return {k: _problems_everywhere(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_problems_everywhere(v) for v in node]
    return node


def _finish(schema: dict[str, Any]) -> dict[str, Any]:
    schema = _problems_everywhere(schema)
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    if "ProblemList" not in schemas:  # every route declares it; keep the refs whole anyway
        schemas["ProblemList"] = ProblemList.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            problems = operation.get("responses", {}).get("422")
            if problems is not None and problems.get("description") == "Validation Error":
                problems["description"] = "Invalid request: each field and what is allowed"
            if path.startswith("/v1/"):
                operation.setdefault("security", [{BEARER: []}])
    if BEARER in schema["components"].get("securitySchemes", {}):
        schema["security"] = [{BEARER: []}]
    return schema


def install_openapi(app: FastAPI) -> None:
    """Serve the document above at `/openapi.json` (built once, on first request)."""
    default_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _finish(default_openapi())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
