"""Re-sending wake-ups: jobs never wait on a lost broker message.

Every `wakeup_resend_s` seconds (EWC_WAKEUP_RESEND_S; the former EWC_SWEEP_INTERVAL_S works; "sweep"
elsewhere means a hyper-parameter grid) each worker asks the database for jobs of its
queues that waited longer than that (or whose worker stopped heartbeating) and re-sends
their wake-ups. It is idempotent: `store.claims.jobs_needing_wakeup` marks what it returns,
so several workers re-sending at once send at most one wake-up per job per interval, and no
more wake-ups are sent than the queue lacks (a wake-up already waiting in the broker makes
its receiver claim jobs until none is left). The same thread applies the checkpoint
retention now and then.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

from celery import Celery
from kombu.exceptions import ChannelError
from sqlalchemy.orm import Session, sessionmaker

from common.broker import send_wakeup
from common.settings import Settings
from common.storage import ArtifactStore
from store import claims
from store.artifacts import expired_experiments, prune_checkpoints
from store.db import unit_of_work
from worker.artifacts import experiment_key

log = logging.getLogger("ewc.worker")


def pending_wakeups(app: Celery, queue: str) -> int | None:
    """Messages waiting in the broker's `queue` (not yet delivered); None if unknown."""
    try:
        with app.connection_for_read() as conn:
            conn.ensure_connection(max_retries=1)
            return conn.default_channel.queue_declare(queue=queue, passive=True).message_count
    except ChannelError:  # Redis: an empty queue does not exist
        return 0
    except Exception as exc:  # noqa: BLE001 - unknown size: send anyway
        log.warning("event=queue_size_unknown queue=%s error=%r", queue, str(exc))
        return None


def resend_wakeups(
    app: Celery, sessions: sessionmaker[Session], settings: Settings, queues: list[str]
) -> int:
    """Re-send the wake-ups late jobs of `queues` need; returns how many were sent."""
    sent = 0
    with unit_of_work(sessions) as session:
        late = claims.jobs_needing_wakeup(
            session,
            settings.wakeup_resend_s,
            heartbeat_timeout_s=settings.heartbeat_timeout_s,
            queues=queues,
        )
        if not late:
            return 0
        wanted = Counter(w.queue for w in late)
        for queue, count in wanted.items():
            pending = pending_wakeups(app, queue)
            missing = count if pending is None else max(0, count - pending)
            hints = [w for w in late if w.queue == queue][:missing]
            for wakeup in hints:
                if send_wakeup(app, queue, wakeup.experiment_id):
                    sent += 1
                    log.info(
                        "event=wakeup_resent experiment_id=%s queue=%s reason=%r",
                        wakeup.experiment_id,
                        queue,
                        wakeup.reason,
                    )
    return sent


#: How often a worker applies the checkpoint retention (EWC_ARTIFACT_RETENTION_DAYS).
PRUNE_INTERVAL_S = 3600.0


def prune_once(
    sessions: sessionmaker[Session],
    settings: Settings,
    store: ArtifactStore | None = None,
    done: set[int] | None = None,
) -> int:
    """Delete the checkpoints of experiments finished longer ago than the retention;
    returns how many checkpoints went (final models and TensorBoard files stay).

    The local folder is pruned as always (on the local store it is the store; on a remote
    one, what working copies were left). A remote `store` loses the published `task-<k>/`
    folders of the same experiments (and their interrupted publishes); ids in `done` (this
    process already pruned them there) are skipped and the new ones added."""
    store = store or settings.artifact_store()
    local_root = store.root if store.is_local else settings.resolved_artifacts_dir()
    with unit_of_work(sessions) as session:
        pruned = prune_checkpoints(session, local_root, settings.artifact_retention_days)
        expired = (
            []
            if store.is_local
            else expired_experiments(session, settings.artifact_retention_days)
        )
    for p in pruned:
        log.info(
            "event=checkpoint_pruned experiment_id=%s path=%s bytes=%s",
            p.experiment_id,
            p.path,
            p.bytes_freed,
        )
    count = len(pruned)
    for experiment_id in expired:
        if done is not None and experiment_id in done:
            continue
        for key in store.prune(experiment_key(experiment_id), keep=0):
            count += 1
            log.info(
                "event=checkpoint_pruned experiment_id=%s path=%s",
                experiment_id,
                store.url_for(key),
            )
        if done is not None:
            done.add(experiment_id)
    return count


class WakeupResender(threading.Thread):
    """Runs `resend_wakeups` now and then every `settings.wakeup_resend_s` seconds, and the
    checkpoint retention (`prune_once`) every PRUNE_INTERVAL_S."""

    def __init__(
        self, app: Celery, sessions: sessionmaker[Session], settings: Settings, queues: list[str]
    ):
        super().__init__(name="wakeup-resender", daemon=True)
        self.app, self.sessions, self.settings, self.queues = app, sessions, settings, queues
        self.done = threading.Event()
        self.store = settings.artifact_store()
        self.pruned: set[int] = set()  # experiments this process pruned in a remote store

    def run(self) -> None:
        next_prune = time.monotonic()
        while not self.done.is_set():
            try:
                resend_wakeups(self.app, self.sessions, self.settings, self.queues)
            except Exception as exc:  # noqa: BLE001 - database or broker away: retry later
                log.warning("event=wakeup_resend_failed error=%r", str(exc))
            if time.monotonic() >= next_prune:
                next_prune = time.monotonic() + PRUNE_INTERVAL_S
                try:
                    prune_once(self.sessions, self.settings, self.store, self.pruned)
                except Exception as exc:  # noqa: BLE001 - e.g. another worker pruned it first
                    log.warning("event=prune_failed error=%r", str(exc))
            self.done.wait(self.settings.wakeup_resend_s)

    def stop(self) -> None:
        """End the thread after the pass in progress."""
        self.done.set()
        self.join(timeout=10)
