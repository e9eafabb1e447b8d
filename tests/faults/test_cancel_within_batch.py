"""A running job cancelled in the middle of an epoch stops after its current batch.

Real processes: an `ewc worker` with a 2 s heartbeat, a redis-server, and PostgreSQL or a
SQLite file; the job is queued and cancelled through the store, exactly as the API does
it. The job has many batches per epoch (LeNet on 72,000 synthetic images, 256 per batch:
about 230, an epoch well over the heartbeat interval even where a batch takes 25 ms). A
few batches into epoch 1, right after the job's heartbeat was refreshed (so a stop
checked only at the heartbeat would run ~2 s more of batches),
the test cancels it, then counts in the worker's DEBUG log the `event=batch` lines (one per
batch the trainer starts) that came after the cancel was recorded: at most two poll
intervals' worth of batches plus two (the poll is 0.25 s; its read of the row and the
thread's wake-up take tens of ms more on 2 busy cores, measured up to 0.34 s in all). A stop
checked only at the heartbeat would run ~2 s of batches (about 100 at 20 ms a batch), one
checked per epoch the rest of the epoch.
"""

from __future__ import annotations

import itertools
import math
import re
import statistics
import time
from datetime import datetime

import pytest

from store.migrate import upgrade
from tests.harness.experiments import Store
from tests.harness.processes import service_env, start_workers
from worker.watch import CANCEL_POLL_S

pytestmark = [pytest.mark.faults, pytest.mark.slow]

SPEC = {
    "dataset": "synthetic",
    "synthetic": {"train_size": 72000, "test_size": 100},
    "model": "lenet",
    "dataset_update": "full",
    "epochs": 2,
    "batch_size": 256,
    "seed": 0,
}
BATCH = re.compile(r"^(\S+ \S+) DEBUG ewc\.worker event=batch experiment_id=(\d+) batch=(\d+)")


@pytest.fixture(params=["postgresql", "sqlite"])
def database(request, tmp_path) -> str:
    if request.param == "postgresql":
        return request.getfixturevalue("pg_database")
    return f"sqlite:///{tmp_path / 'ewc.db'}"


def _batches(lines: list[str], experiment_id: int) -> list[tuple[datetime, int]]:
    """(log time, batch number) of every `event=batch` line of the job in `lines`."""
    found = []
    for line in lines:
        match = BATCH.match(line)
        if match and int(match.group(2)) == experiment_id:
            found.append((datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f"), int(match.group(3))))
    return found


def test_a_cancel_in_the_middle_of_an_epoch_stops_the_job_after_its_current_batch(
    tmp_path, database, private_redis, processes, say
):
    upgrade(database)
    env = service_env(
        database,
        private_redis.url,
        tmp_path / "data",
        fast_recovery=True,
        EWC_HEARTBEAT_S="2",
        EWC_HEARTBEAT_TIMEOUT_S="60",
        EWC_LOG_LEVEL="DEBUG",
    )
    (worker,) = start_workers(processes, env)
    store = Store(database, private_redis.url)
    try:
        experiment_id = store.submit(store.user("ann"), SPEC)
        # A few batches in (the first one also traces the step), then the next heartbeat.
        worker.wait_for_line(
            lambda line: len(_batches(worker.lines, experiment_id)) >= 4, timeout=180
        )
        beat = store.job(experiment_id)["heartbeat_at"]
        deadline = time.monotonic() + 30
        while store.job(experiment_id)["heartbeat_at"] == beat:
            assert time.monotonic() < deadline, "no heartbeat within 30 s"
            time.sleep(0.01)
        store.cancel(experiment_id)
        cancelled_at = len(worker.lines)  # every batch line after this started after the cancel
        job = store.wait_for(experiment_id, {"succeeded", "failed", "cancelled"}, timeout=120)
        epochs = store.epochs(experiment_id)
    finally:
        store.close()
    stopped = worker.wait_for_line(lambda line: "event=job_stopped" in line)

    before = _batches(worker.lines[:cancelled_at], experiment_id)
    after = _batches(worker.lines[cancelled_at:], experiment_id)
    gaps = [(b[0] - a[0]).total_seconds() for a, b in itertools.pairwise(before[2:])]
    batch_s = statistics.median(gaps)
    allowed = 2 + math.ceil(2 * CANCEL_POLL_S / batch_s)
    say(
        f"[{database.split(':')[0]}] {batch_s:.2f} s per batch; cancelled right after a "
        f"heartbeat, during batch {before[-1][1]} of epoch 1; batches started after the cancel "
        f"was recorded: {len(after)} (allowed {allowed}); job {job['status']}: {job['error']!r}"
    )
    assert job["status"] == "cancelled", job
    assert job["error"] == "cancelled on request before the first epoch ended", job
    assert epochs == []  # epoch 1 never finished: the stop came inside it
    assert len(after) <= allowed, (after, batch_s)
    assert "reason=cancel" in stopped and f"batches={before[-1][1] + len(after)} " in stopped
