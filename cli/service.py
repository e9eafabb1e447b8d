"""`ewc worker` (a Celery worker that trains jobs) and `ewc up` (the whole local service).

`ewc worker` imports TensorFlow (seconds); `ewc up` does not — it starts the API and one
worker as child processes. Both read the one settings object (`EWC_*` variables).
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Annotated

import typer

from common.logs import configure_logging
from common.settings import Settings

QueueOption = Annotated[
    str | None,
    typer.Option(
        "--queue",
        "-Q",
        help="Queue(s) to serve: cpu, gpu or cpu,gpu. Default: EWC_WORKER_QUEUE (cpu).",
    ),
]
ConcurrencyOption = Annotated[
    int,
    typer.Option(
        "--concurrency",
        help="Always 1: one worker process trains one job at a time. Use --slots N for "
        "several on one device, or one `ewc worker` per GPU (CUDA_VISIBLE_DEVICES=k).",
    ),
]
SlotsOption = Annotated[
    int,
    typer.Option(
        "--slots",
        envvar="EWC_WORKER_SLOTS",
        min=1,
        help="Worker processes on this device, each training one job at a time (small jobs "
        "share a device; on a GPU each gets 90 % of its memory ÷ N, or EWC_GPU_MEMORY_MB). "
        "Default: EWC_WORKER_SLOTS (1).",
    ),
]


def _fail(message: str, code: int = 2) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _check_database(url: str) -> None:
    """Exit with a message unless the database answers and has been migrated."""
    from sqlalchemy import inspect
    from sqlalchemy.exc import SQLAlchemyError

    from store.db import make_engine
    from store.errors import error_reason

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            migrated = inspect(conn).has_table("experiments")
    except SQLAlchemyError as exc:
        where = engine.url.render_as_string(hide_password=True)
        _fail(f"cannot reach the database at {where}: {error_reason(exc)}; check EWC_DATABASE_URL")
    finally:
        engine.dispose()
    if not migrated:
        _fail("the database has no tables yet; run `ewc migrate` first")


def worker(
    queue: QueueOption = None, concurrency: ConcurrencyOption = 1, slots: SlotsOption = 1
) -> None:
    """Train jobs from the queue(s): a Celery worker, solo pool, one job at a time (with
    --slots N: N such processes, supervised by this one)."""
    from worker.celery_app import parse_queues

    settings = Settings()
    if concurrency != 1:
        _fail(
            "--concurrency must be 1: TensorFlow jobs run one per process. Use --slots N, "
            "or one `ewc worker` per GPU (CUDA_VISIBLE_DEVICES=0, 1, ...)."
        )
    try:
        queues = parse_queues(queue or settings.worker_queue)
    except ValueError as exc:
        _fail(str(exc))
    configure_logging(settings.log_level)
    log = logging.getLogger("ewc.worker")
    _check_database(settings.resolved_database_url())
    if slots > 1:  # N plain workers, each its own process; this one imports no TensorFlow
        from worker.slots import SlotSupervisor

        raise typer.Exit(SlotSupervisor(slots, ",".join(queues)).run())

    from worker.devices import detect_device

    device = detect_device()  # imports TensorFlow now, not at the first job
    if "gpu" in queues and device == "CPU":
        _fail(
            "this worker serves the gpu queue but TensorFlow sees no GPU (check the NVIDIA "
            "driver / container runtime, or serve the cpu queue: --queue cpu)"
        )
    import continual_core.trainer  # noqa: F401 - warm the import so the first job starts fast
    from worker.celery_app import create_worker_app
    from worker.presence import PresenceHeartbeat
    from worker.wakeups import WakeupResender
    from worker.webhooks import WebhookDispatcher

    app = create_worker_app(settings, queues=queues, device=device)
    runtime = app.ewc_runtime
    slot = os.environ.get("EWC_WORKER_SLOT")
    hostname = f"ewc-{'-'.join(queues)}{f'-slot{slot}' if slot else ''}-{os.getpid()}@{socket.gethostname()}"
    log.info(
        "event=worker_start hostname=%s worker=%s queues=%s device=%r database=%s",
        hostname,
        runtime.name,
        ",".join(queues),
        device,
        runtime.engine.url.render_as_string(hide_password=True),
    )
    presence = PresenceHeartbeat(
        runtime.sessions, runtime.name, queues, device, settings.heartbeat_s, runtime.presence
    )
    presence.start()
    resender = WakeupResender(app, runtime.sessions, settings, queues)
    resender.start()
    dispatcher = WebhookDispatcher(runtime.sessions, settings)  # webhook deliveries
    dispatcher.start()
    celery_worker = app.Worker(
        hostname=hostname,
        queues=queues,
        pool="solo",
        concurrency=1,
        prefetch_multiplier=1,
        loglevel=settings.log_level.upper(),
        without_gossip=True,
        without_mingle=True,
        optimization="fair",
        quiet=True,
    )
    try:
        celery_worker.start()
    finally:
        dispatcher.stop()
        resender.stop()
        presence.stop()
        runtime.engine.dispose()
        log.info("event=worker_stop worker=%s jobs_run=%s", runtime.name, runtime.jobs_run)
    raise typer.Exit(celery_worker.exitcode or 0)


PortOption = Annotated[
    int | None,
    typer.Option("--port", help="Port of the API (default: PORT / EWC_PORT, else 8000)."),
]


def up(port: PortOption = None) -> None:
    """Start the whole local service: database, broker, API and one worker. Ctrl-C stops it."""
    from cli.local_service import LocalService, StartupError

    settings = Settings()
    if port is not None:
        settings.port = port
    service = LocalService(settings)
    try:
        code = service.run()
    except StartupError as exc:
        service.stop()
        _fail(str(exc), code=1)
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Add `ewc worker` and `ewc up` to the `ewc` command line."""
    app.command("worker", help="Train queued jobs (a Celery worker; TensorFlow).")(worker)
    app.command("up", help="Start API + worker + embedded broker + SQLite locally (make run).")(up)
