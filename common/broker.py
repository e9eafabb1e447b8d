"""The one Celery configuration, shared by the API (which only sends wake-ups) and the
worker (which adds its tasks to the same app).

The broker carries wake-ups, not decisions: a message says "a job may be waiting on this
queue" and the worker that receives it claims the best waiting job from the database. So
a message lost while the broker is down costs nothing but latency — the row in the
database is the truth, and every worker periodically re-sends the wake-ups of jobs that wait too long.
"""

from __future__ import annotations

import logging

from celery import Celery
from kombu.exceptions import KombuError, OperationalError

from common.settings import Settings

log = logging.getLogger("common.broker")

#: Name of the task that claims and runs the next waiting job of a queue.
RUN_NEXT_TASK = "ewc.run_next"
#: Broker used when the settings name none (a Redis on this machine).
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/0"
#: Seconds to wait for the broker before giving up on a send or a ping.
CONNECT_TIMEOUT_S = 2.0


def make_celery(settings: Settings) -> Celery:
    """The Celery app configured for EWC Server: JSON only, late acks, prefetch 1, no results.

    Results live in the database, so there is no result backend. Connection timeouts are
    short so that an unreachable broker never hangs an API request. Redis' visibility
    timeout exceeds the longest allowed job, so a job in progress is not redelivered.
    """
    app = Celery("ewc", set_as_current=False)
    app.conf.update(
        broker_url=settings.broker_url or DEFAULT_BROKER_URL,
        result_backend=None,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue="cpu",
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=CONNECT_TIMEOUT_S,
        broker_transport_options={
            "socket_connect_timeout": CONNECT_TIMEOUT_S,
            "socket_timeout": 10.0,
            "socket_keepalive": True,
            "retry_on_timeout": True,
            "visibility_timeout": int(settings.job_time_limit_s) + 3600,
            # Opening a channel gives up fast (one retry, no back-off); a worker re-sends it later.
            "max_retries": 1,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 0.5,
        },
        task_publish_retry=False,
        enable_utc=True,
        timezone="UTC",
    )
    return app


def send_wakeup(app: Celery, queue: str, experiment_id: int | None = None) -> bool:
    """Send one "ewc.run_next" wake-up to `queue`; True if the broker took it.

    `experiment_id` is a hint (the job just submitted); the worker still asks the database
    which job is next. When the broker is unreachable this logs and returns False instead
    of raising: the job waits in the database until a worker re-sends its wake-up.
    """
    try:
        app.send_task(
            RUN_NEXT_TASK,
            args=[queue, experiment_id],
            queue=queue,
            routing_key=queue,
            retry=False,
        )
    except (OperationalError, KombuError, OSError, TimeoutError) as exc:
        log.warning(
            "event=wakeup_failed queue=%s experiment_id=%s error=%r",
            queue,
            experiment_id,
            str(exc),
        )
        return False
    log.info("event=wakeup_sent queue=%s experiment_id=%s", queue, experiment_id)
    return True


def ping_broker(app: Celery, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Raise (kombu OperationalError / OSError) unless the broker answers within `timeout` s."""
    with app.connection_for_write() as conn:
        conn.ensure_connection(
            max_retries=1, interval_start=0, interval_step=0.2, interval_max=0.5, timeout=timeout
        )
        # Redis: ask the server itself (a pooled socket may be stale).
        channel = conn.default_channel
        client = getattr(channel, "client", None)
        if client is not None and hasattr(client, "ping"):
            client.ping()
