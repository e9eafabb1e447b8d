"""Liveness, readiness and Prometheus metrics (no authentication: probes and scrapers)."""

from __future__ import annotations

import logging
from functools import lru_cache

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.openapi import PUBLIC, text_body
from api.schemas import Health
from common.broker import ping_broker
from common.storage import ArtifactStore, open_store
from store.db import ping
from store.errors import error_reason

log = logging.getLogger("ewc.api")

router = APIRouter(tags=["health"])

#: A probe answers fast: an S3 store gets one try, 2 s to connect and 2 s to read.
STORAGE_PROBE = {"connect_timeout_s": 2.0, "read_timeout_s": 2.0, "max_attempts": 1}


@lru_cache(maxsize=4)
def probe_store(url: str) -> ArtifactStore:
    """The artifact store at `url` as the readiness probe asks it (built once per URL)."""
    return open_store(url, **STORAGE_PROBE) if url.startswith("s3://") else open_store(url)


@router.get("/healthz", operation_id="healthz", openapi_extra=PUBLIC)
def healthz() -> Health:
    """200 while the process is alive; touches no database or broker."""
    return Health(status="ok")


@router.get(
    "/readyz",
    operation_id="readyz",
    response_model=Health,
    responses={503: {"model": Health, "description": "A dependency is down"}},
    openapi_extra=PUBLIC,
)
def readyz(request: Request) -> JSONResponse:
    """200 when the database and the broker both answer (and a remote artifact store,
    EWC_ARTIFACTS_URL=s3://..., as `storage`), else 503 naming the one that failed."""
    checks: dict[str, str] = {}
    try:
        ping(request.app.state.engine)
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"; say which
        checks["database"] = f"error: {error_reason(exc, 300)}"
    try:
        ping_broker(request.app.state.celery)
        checks["broker"] = "ok"
    except Exception as exc:  # noqa: BLE001
        checks["broker"] = f"error: {error_reason(exc, 300)}"
    store = probe_store(request.app.state.settings.resolved_artifacts_url())
    if not store.is_local:  # the local folder's probe stays as it was: none
        try:
            store.check()
            checks["storage"] = "ok"
        except Exception as exc:  # noqa: BLE001 - a StorageError's message holds no secret
            checks["storage"] = f"error: {error_reason(exc, 300)}"
    ready = all(v == "ok" for v in checks.values())
    if not ready:
        log.warning("event=not_ready %s", " ".join(f"{k}={v!r}" for k, v in checks.items()))
    body = Health(status="ok" if ready else "unavailable", checks=checks)
    return JSONResponse(status_code=200 if ready else 503, content=body.model_dump())


@router.get(
    "/metrics",
    operation_id="prometheus_metrics",
    response_class=Response,
    responses={200: text_body("text/plain", "Prometheus text format")},
    openapi_extra=PUBLIC,
)
def metrics(request: Request) -> Response:
    """Prometheus text format: jobs by status, queue depths, HTTP request counts and latency."""
    return Response(generate_latest(request.app.state.registry), media_type=CONTENT_TYPE_LATEST)
