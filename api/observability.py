"""Prometheus metrics and request logs.

- `JobsCollector`: jobs by status and queue depths, read from the database at scrape time
  (so every API replica reports the same truth, and nothing drifts between scrapes).
- `RequestMetrics`: an ASGI middleware counting requests and timing them by route
  template (not raw path, so ids do not explode the label set), and writing one log line
  per request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from store import experiments

log = logging.getLogger("ewc.api")


class JobsCollector(Collector):
    """Gauges read from the database at scrape time: jobs by status, queue depths."""

    def __init__(self, session_factory: sessionmaker[Session]):
        self.session_factory = session_factory

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("ewc_database_up", "1 if the database answered this scrape")
        jobs = GaugeMetricFamily("ewc_jobs", "Experiments by status", labels=["status"])
        depth = GaugeMetricFamily(
            "ewc_queue_jobs",
            "Queued (waiting) and running jobs per queue",
            labels=["queue", "state"],
        )
        try:
            with self.session_factory() as session:
                counts = experiments.status_counts(session)
                depths = experiments.queue_depths(session)
        except SQLAlchemyError as exc:
            log.warning("event=metrics_db_error error=%r", str(exc).splitlines()[0])
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        for status, n in counts.items():
            jobs.add_metric([status], n)
        for queue, states in depths.items():
            for state, n in states.items():
                depth.add_metric([queue, state], n)
        yield from (up, jobs, depth)


class HttpMetrics:
    """The request counter and latency histogram of one app (on its own registry)."""

    def __init__(self, registry: CollectorRegistry):
        self.requests = Counter(
            "ewc_http_requests",
            "HTTP requests by method, route template and status code",
            ["method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "ewc_http_request_duration_seconds",
            "HTTP request latency by method and route template",
            ["method", "route"],
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )


def make_registry(session_factory: sessionmaker[Session]) -> tuple[CollectorRegistry, HttpMetrics]:
    """A fresh registry with the jobs collector and the HTTP metrics registered."""
    registry = CollectorRegistry()
    registry.register(JobsCollector(session_factory))
    return registry, HttpMetrics(registry)


class RequestMetrics:
    """ASGI middleware: count, time and log every HTTP request."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status_code = 500

        async def send_and_record(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            elapsed = time.perf_counter() - start
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope["method"]
            metrics: HttpMetrics | None = getattr(scope["app"].state, "http_metrics", None)
            if metrics is not None:
                metrics.requests.labels(method, route, str(status_code)).inc()
                metrics.latency.labels(method, route).observe(elapsed)
            log.info(
                "event=request method=%s path=%s route=%s status=%s duration_ms=%.1f",
                method,
                scope["path"],
                route,
                status_code,
                elapsed * 1000,
            )
