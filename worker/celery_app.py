"""The worker's Celery app: `common.broker.make_celery` plus the one task, "ewc.run_next".

A message is a wake-up, not an order: "ewc.run_next"(queue, experiment_id) makes the
worker claim the best claimable job of the queues it serves from the database, run it,
and claim again until nothing is left. A redelivered or duplicate message is harmless —
claims are atomic, so it finds the job taken and ends.

Run it with the solo pool (TensorFlow and fork do not mix), one process per GPU,
prefetch 1 and late acks: `ewc worker --queue gpu`.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field

from celery import Celery, signals
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from common.broker import RUN_NEXT_TASK, make_celery
from common.settings import Settings
from store import claims
from store.db import make_engine, make_session_factory, unit_of_work
from store.vocabulary import QUEUES
from worker.artifacts import WorkerArtifacts
from worker.outcome import Outcome
from worker.runner import run_job

log = logging.getLogger("ewc.worker")

#: Seconds a wake-up keeps trying to claim its own job while that job's row is locked.
HINT_WAIT_S = 2.0
#: Seconds between those tries.
HINT_RETRY_S = 0.02
#: After a warm shutdown's job has ended, how long Celery may take to close its broker
#: connection (acks, channels) before the process exits anyway: with the host's Redis
#: gone too, kombu's reconnecting would outlast any container stop timeout.
SHUTDOWN_EXIT_GRACE_S = 10.0


def worker_name() -> str:
    """This process's name in the `worker` column: host:pid:random (unique across restarts)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


@dataclass
class WorkerRuntime:
    """What the task needs: the database, the queues served, the device, a shutdown flag,
    the artifact store (built once per process)."""

    settings: Settings
    queues: list[str]
    engine: Engine
    sessions: sessionmaker[Session]
    device: str = "CPU"
    artifacts: WorkerArtifacts | None = None
    name: str = field(default_factory=worker_name)
    shutting_down: threading.Event = field(default_factory=threading.Event)
    jobs_run: int = 0
    current_job: int | None = None  # the experiment being run now, if any

    def presence(self) -> tuple[int | None, int]:
        """(experiment id being run or None, jobs run so far), for the presence heartbeat."""
        return self.current_job, self.jobs_run

    def run_until_idle(self, hint: int | None = None) -> list[tuple[int, Outcome]]:
        """Claim and run jobs of `self.queues` until none is claimable (or shutdown).

        Returns (experiment id, outcome) of each job run. `hint` (the id in the wake-up)
        does not choose the job — the database decides what runs next — but when nothing
        could be claimed while the hinted job is still waiting (its row locked for a moment
        by the API), the claim is retried for up to HINT_WAIT_S seconds.
        """
        done: list[tuple[int, Outcome]] = []
        hint_deadline = time.monotonic() + HINT_WAIT_S
        while not self.shutting_down.is_set():
            with unit_of_work(self.sessions) as session:
                job = claims.claim_next_job(
                    session,
                    self.queues,
                    self.name,
                    self.settings.heartbeat_timeout_s,
                    self.settings.max_attempts,
                )
                locked_out = (
                    job is None
                    and hint is not None
                    and not done
                    and claims.is_waiting(session, hint, self.queues)
                )
            if job is None:
                if locked_out and time.monotonic() < hint_deadline:
                    # The job this wake-up is for waits, but its row is locked for a moment
                    # (the API recording that it sent this wake-up): without a retry it
                    # would wait for its wake-up to be re-sent, EWC_WAKEUP_RESEND_S or more.
                    time.sleep(HINT_RETRY_S)
                    continue
                break
            log.info(
                "event=job_claimed experiment_id=%s worker=%s attempt=%s hint=%s",
                job.id,
                self.name,
                job.attempts,
                hint,
            )
            self.current_job = job.id
            try:
                outcome = run_job(
                    job,
                    worker=self.name,
                    settings=self.settings,
                    sessions=self.sessions,
                    device=self.device,
                    shutting_down=self.shutting_down,
                    artifacts=self.artifacts,
                )
            finally:
                self.current_job = None
            self.jobs_run += 1
            done.append((job.id, outcome))
        return done


def parse_queues(text: str) -> list[str]:
    """ "cpu", "gpu" or "cpu,gpu" → the list of queues; raises ValueError naming the choices."""
    queues = list(dict.fromkeys(q.strip() for q in text.split(",") if q.strip()))
    bad = [q for q in queues if q not in QUEUES]
    if not queues or bad:
        raise ValueError(
            f"--queue: {', '.join(bad) or repr(text)} is not a queue; use cpu, gpu or cpu,gpu"
        )
    return queues


def create_worker_app(
    settings: Settings, *, queues: list[str] | None = None, device: str = "CPU"
) -> Celery:
    """The Celery app of a worker serving `queues` (default: `settings.worker_queue`).

    Registers "ewc.run_next" and keeps the runtime on `app.ewc_runtime` (database sessions,
    worker name, shutdown flag). Builds an engine; imports no TensorFlow.
    """
    served = queues or parse_queues(settings.worker_queue)
    app = make_celery(settings)
    app.conf.update(
        worker_pool="solo",
        worker_concurrency=1,
        worker_prefetch_multiplier=1,
        task_acks_late=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_create_missing_queues=True,
    )
    engine = make_engine(settings.resolved_database_url())
    runtime = WorkerRuntime(
        settings=settings,
        queues=served,
        engine=engine,
        sessions=make_session_factory(engine),
        device=device,
        artifacts=WorkerArtifacts.from_settings(settings),
    )
    log.info("event=artifact_store url=%s", runtime.artifacts.store.url_for())
    app.ewc_runtime = runtime  # type: ignore[attr-defined]

    @app.task(name=RUN_NEXT_TASK, acks_late=True, ignore_result=True)
    def run_next(queue: str | None = None, experiment_id: int | None = None) -> int:
        """Claim and run jobs until none is left; returns how many ran."""
        log.info("event=wakeup queue=%s experiment_id=%s", queue, experiment_id)
        return len(runtime.run_until_idle(hint=experiment_id))

    def _on_shutdown(**_kwargs) -> None:
        # Warm shutdown (SIGTERM/SIGINT): the job in progress stops at its next batch and
        # goes back to the queue, to be resumed from its last checkpoint.
        runtime.shutting_down.set()
        threading.Thread(target=_exit_if_stuck, name="shutdown-watchdog", daemon=True).start()

    def _exit_if_stuck() -> None:
        # The job's state is safe once it has ended (handed back, or taken over later); an
        # unacked wake-up is redelivered and finds nothing to claim.
        while runtime.current_job is not None:
            time.sleep(0.2)
        time.sleep(SHUTDOWN_EXIT_GRACE_S)
        log.warning(
            "event=forced_exit worker=%s (the broker did not let the shutdown finish in %s s)",
            runtime.name,
            SHUTDOWN_EXIT_GRACE_S,
        )
        logging.shutdown()
        os._exit(0)

    signals.worker_shutting_down.connect(_on_shutdown, weak=False)
    return app
