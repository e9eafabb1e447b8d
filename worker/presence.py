"""The worker's presence heartbeat: its row in the `workers` table, busy or idle.

`GET /v1/queues` and `/metrics` read these rows to show which workers are alive, on which
queues, with which device and running which job. The thread beats every `heartbeat_s`
seconds; a database that is briefly away costs a logged warning, never the worker.
Each beat that reached the database also touches ALIVE_FILE, which the container
healthcheck reads (its age says whether this worker still reaches the database).
"""

from __future__ import annotations

import logging
import socket
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from store import workers
from store.db import unit_of_work
from store.errors import error_reason

log = logging.getLogger("ewc.worker")

#: Touched after every presence heartbeat that was written (see the Dockerfile's HEALTHCHECK).
ALIVE_FILE = Path(tempfile.gettempdir()) / "ewc-worker.alive"


class PresenceHeartbeat(threading.Thread):
    """Upserts this worker's row every `interval_s` seconds until `stop()`.

    `state()` returns (experiment id being run or None, jobs run so far).
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        name: str,
        queues: list[str],
        device: str,
        interval_s: float,
        state: Callable[[], tuple[int | None, int]],
    ):
        super().__init__(name="worker-presence", daemon=True)
        self.sessions, self.worker_name, self.queues = sessions, name, queues
        self.device, self.interval_s, self.state = device, interval_s, state
        self.hostname = socket.gethostname()
        self.done = threading.Event()
        self._failing = False

    def beat(self) -> None:
        """Write one presence heartbeat now."""
        experiment_id, jobs_run = self.state()
        with unit_of_work(self.sessions) as session:
            workers.report_presence(
                session,
                self.worker_name,
                hostname=self.hostname,
                queues=self.queues,
                device=self.device,
                experiment_id=experiment_id,
                jobs_run=jobs_run,
            )

    def run(self) -> None:
        try:
            with unit_of_work(self.sessions) as session:
                workers.forget_dead_workers(session)
        except Exception as exc:  # noqa: BLE001 - housekeeping only
            log.warning("event=forget_dead_workers_failed error=%r", error_reason(exc))
        while True:
            try:
                self.beat()
                try:
                    ALIVE_FILE.touch()
                except OSError:  # a read-only /tmp: no healthcheck file, nothing else lost
                    pass
                if self._failing:
                    log.info("event=presence_restored worker=%s", self.worker_name)
                self._failing = False
            except Exception as exc:  # noqa: BLE001 - database briefly away: keep going
                if not self._failing:
                    log.warning(
                        "event=presence_failed worker=%s error=%r",
                        self.worker_name,
                        error_reason(exc),
                    )
                self._failing = True
            if self.done.wait(self.interval_s):
                return

    def stop(self) -> None:
        """End the thread and delete this worker's row (best effort)."""
        self.done.set()
        self.join(timeout=10)
        try:
            with unit_of_work(self.sessions) as session:
                workers.remove_worker(session, self.worker_name)
        except Exception as exc:  # noqa: BLE001 - the row then ages out
            log.warning("event=presence_remove_failed error=%r", error_reason(exc))
