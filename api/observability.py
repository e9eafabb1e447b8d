"""Prometheus metrics and request logs.

- `JobsCollector`: jobs by status, queue depths, job and epoch duration histograms and
  each worker's heartbeat age, read from the database at scrape time (so every API replica
  reports the same truth for the whole fleet of workers, on however many hosts, and
  nothing drifts between scrapes).
- `RequestMetrics`: an ASGI middleware counting requests and timing them by route
  template (not raw path, so ids do not explode the label set; unmatched paths share one
  "unmatched" label) and by method (known methods only, any other is "other"), and writing
  one log line per request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from store import experiments, stats, workers
from store.errors import error_reason

log = logging.getLogger("ewc.api")


class JobsCollector(Collector):
    """Gauges read from the database at scrape time: jobs by status, queue depths."""

    def __init__(self, session_factory: sessionmaker[Session], heartbeat_timeout_s: float = 30.0):
        self.session_factory = session_factory
        self.heartbeat_timeout_s = heartbeat_timeout_s

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
                durations = stats.job_duration_histograms(session)
                epochs = stats.epoch_duration_histogram(session)
                fleet = workers.list_workers(session, self.heartbeat_timeout_s)
        except SQLAlchemyError as exc:
            log.warning("event=metrics_db_error error=%r", error_reason(exc))
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
        job_s = HistogramMetricFamily(
            "ewc_job_duration_seconds",
            "Wall time of finished jobs from first start to finish, by final status",
            labels=["status"],
        )
        for status, hist in durations.items():
            job_s.add_metric([status], _buckets(hist), hist.sum)
        epoch_s = HistogramMetricFamily(
            "ewc_epoch_duration_seconds", "Duration of every training epoch (train + validation)"
        )
        epoch_s.add_metric([], _buckets(epochs), epochs.sum)
        age = GaugeMetricFamily(
            "ewc_worker_heartbeat_age_seconds",
            "Seconds since each known worker's last presence heartbeat",
            labels=["worker", "hostname", "queues", "device"],
        )
        alive = GaugeMetricFamily(
            "ewc_workers_alive", "Workers with a fresh heartbeat, per queue", labels=["queue"]
        )
        alive_per_queue = {q: 0 for q in depths}
        for w in fleet:
            age.add_metric([w.name, w.hostname, ",".join(w.queues), w.device], w.heartbeat_age_s)
            for queue in w.queues:
                alive_per_queue[queue] = alive_per_queue.get(queue, 0) + int(w.alive)
        for queue, n in alive_per_queue.items():
            alive.add_metric([queue], n)
        yield from (job_s, epoch_s, age, alive)


def _buckets(hist: stats.Histogram) -> list[tuple[str, float]]:
    """Prometheus buckets ("le", cumulative count), ending with +Inf = the total count."""
    return [(repr(float(b)), n) for b, n in zip(hist.bounds, hist.cumulative, strict=True)] + [
        ("+Inf", hist.count)
    ]


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


def make_registry(
    session_factory: sessionmaker[Session], heartbeat_timeout_s: float = 30.0
) -> tuple[CollectorRegistry, HttpMetrics]:
    """A fresh registry with the jobs collector and the HTTP metrics registered."""
    registry = CollectorRegistry()
    registry.register(JobsCollector(session_factory, heartbeat_timeout_s))
    return registry, HttpMetrics(registry)


#: The methods counted under their own name; any other (anyone may invent one, no token
#: needed) is counted as "other", so requests cannot grow the label set.
KNOWN_METHODS = frozenset(
    ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT")
)


def metric_method(method: str) -> str:
    """The `method` label of a request: a known HTTP method, else "other"."""
    return method if method in KNOWN_METHODS else "other"


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
            method = metric_method(scope["method"])
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
