"""The FastAPI application factory.

Nothing is built at import time: `create_app()` returns an app whose lifespan builds the
engine, the session factory, the Celery client (which only sends wake-ups) and the metrics
registry, and — when the settings name an admin token — makes sure the `admin` user has it.
Run it with `ewc api`, or `uvicorn api.app:create_app --factory`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from api.body_limit import BodySizeLimit
from api.concurrency import ConcurrencyLimit
from api.errors import install_error_handlers
from api.observability import RequestMetrics, make_registry
from api.openapi import TAGS, install_openapi
from api.routes import ROUTERS
from api.services.datasets import dataset_upload_limits
from api.throttle import AuthThrottle
from common.broker import make_celery
from common.settings import Settings, get_settings
from store import users
from store.db import make_engine, make_session_factory, read_engine, unit_of_work
from store.errors import error_reason

log = logging.getLogger("ewc.api")

ADMIN_USER = "admin"


def _ensure_admin(app: FastAPI, token: str) -> None:
    try:
        with unit_of_work(app.state.session_factory) as session:
            users.ensure_admin(session, ADMIN_USER, token)
        log.info("event=admin_ensured user=%s", ADMIN_USER)
    except (SQLAlchemyError, ValueError) as exc:
        # Keep serving: /readyz reports the database; a restart retries this.
        log.error("event=admin_not_ensured error=%r", error_reason(exc))


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Build the engine, sessions, Celery client and metrics; dispose of them at shutdown."""
    settings: Settings = app.state.settings
    # One number sizes the threads, the admitted requests (`ConcurrencyLimit`) and the
    # pool: an admitted request holds at most one connection while it waits for a thread,
    # and each thread at most one more, so nobody ever waits for a connection.
    anyio.to_thread.current_default_thread_limiter().total_tokens = settings.api_threads
    engine = make_engine(
        settings.resolved_database_url(),
        pool_size=settings.api_threads,
        max_overflow=settings.api_threads,
    )
    app.state.engine = engine
    app.state.session_factory = make_session_factory(engine)
    app.state.read_session_factory = make_session_factory(read_engine(engine))
    app.state.celery = make_celery(settings)
    app.state.registry, app.state.http_metrics = make_registry(
        app.state.session_factory, settings.heartbeat_timeout_s
    )
    if settings.admin_token:
        await run_in_threadpool(_ensure_admin, app, settings.admin_token)
    log.info("event=api_started database=%s", engine.url.render_as_string(hide_password=True))
    try:
        yield
    finally:
        app.state.celery.close()
        engine.dispose()
        log.info("event=api_stopped")


def create_app(settings: Settings | None = None) -> FastAPI:
    """The EWC Server HTTP API for `settings` (default: the EWC_* environment)."""
    settings = settings or get_settings()
    app = FastAPI(
        title="EWC Server",
        version="1",
        summary="Continual-learning experiments (EWC, FIM, IncDet) as a shared job service.",
        description="Every `/v1` call needs `Authorization: Bearer <token>`. Accuracies are "
        "fractions in [0, 1]; times are seconds.",
        openapi_tags=TAGS,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.auth_throttle = AuthThrottle(max_failures=settings.auth_failures)
    install_error_handlers(app)
    install_openapi(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes,
                       routes=dataset_upload_limits(settings))
    app.add_middleware(RequestMetrics)
    # Outermost: a request refused (busy) or dropped (its client left) costs nothing
    # more; both are counted in `ewc_http_refused_total`.
    app.add_middleware(
        ConcurrencyLimit,
        limit=settings.api_threads,
        max_queue=settings.api_queue,
        queue_timeout_s=settings.api_queue_timeout_s,
    )
    for router in ROUTERS:  # their one list, and why its order is safe: `api.routes`
        app.include_router(router)
    return app
