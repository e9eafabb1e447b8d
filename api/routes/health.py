"""Liveness, readiness and Prometheus metrics (no authentication: probes and scrapers)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.openapi import PUBLIC, text_body
from api.schemas import Health
from common.broker import ping_broker
from store.db import ping
from store.errors import error_reason

log = logging.getLogger("ewc.api")

router = APIRouter(tags=["health"])


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
    """200 when the database and the broker both answer, else 503 naming the one that failed."""
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
