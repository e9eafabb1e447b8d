"""A host shutting down: PostgreSQL and Redis go away with the worker (issue 10, D10).

The worker gets SIGTERM while its job runs, at the moment its database and broker stop.
It cannot hand the job back, so it must not wait for them: it exits within seconds (a
bounded retry), not after the container engine's grace period. The job stays `running`
under the dead worker's claim; once PostgreSQL is back, a new worker takes it over when
its heartbeat has expired, and finishes it from the last checkpoint.

Real processes: a private PostgreSQL cluster (stopped with `pg_ctl -m fast`, as a host
shutdown does), a private redis-server (killed), `ewc worker` processes.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time

import pytest

from store.migrate import upgrade
from tests.harness.experiments import Store, two_tasks
from tests.harness.processes import claimed_ids, service_env, start_workers

pytestmark = [pytest.mark.faults, pytest.mark.slow]

SPEC = two_tasks(epochs=60)
#: How long the worker may take to exit with its database gone (it used to hang > 60 s).
EXIT_BOUND_S = 25.0


def test_a_worker_whose_database_is_gone_exits_promptly_and_the_job_is_recovered(
    tmp_path, private_postgres, private_redis, processes, say
):
    database = private_postgres.create_database("ewc_shutdown")
    upgrade(database)
    env = service_env(
        database, private_redis.url, tmp_path / "data", fast_recovery=True,
        EWC_HEARTBEAT_TIMEOUT_S="5",
    )  # fmt: skip
    (first,) = start_workers(processes, env)
    store = Store(database, private_redis.url)
    try:
        experiment_id = store.submit(store.user("ann"), SPEC)
        first.wait_for_line(lambda line: "event=task_end" in line and "task=1 " in line, timeout=180)
    finally:
        store.close()
    private_redis.kill()
    private_postgres.stop("fast")
    sent = time.monotonic()
    first.popen.send_signal(signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):  # reported below
        first.popen.wait(timeout=90)
    exit_s = time.monotonic() - sent
    say(f"SIGTERM with PostgreSQL and Redis gone: worker exited after {exit_s:.1f} s "
        f"(code {first.popen.returncode})")
    assert first.popen.returncode is not None and exit_s < EXIT_BOUND_S, first.output[-3000:]
    assert any("event=job_release_failed" in line for line in first.lines), first.output[-3000:]

    private_postgres.start()
    private_redis.start()
    store = Store(database, private_redis.url)
    try:
        assert store.job(experiment_id)["status"] == "running"  # not handed back: taken over
        (second,) = start_workers(processes, env)
        job = store.wait_for(experiment_id, {"succeeded", "failed", "cancelled"}, timeout=300)
        epochs = [e["epoch"] for e in store.epochs(experiment_id)]
    finally:
        store.close()
    say(f"worker-2 took the job over after its heartbeat expired: {job['status']}")
    assert job["status"] == "succeeded", job
    assert claimed_ids(second) == [experiment_id]
    assert epochs == list(range(1, 61))
