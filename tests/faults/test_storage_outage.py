"""Fault: the S3 endpoint goes away in the middle of a job, then comes back.

Real processes and servers: an `ewc worker` and an API storing artifacts in a bucket
(EWC_ARTIFACTS_URL=s3://...; moto's S3 server), PostgreSQL and a redis-server. The
endpoint is taken away right after the job started, so task 1's checkpoint cannot be
published: the worker must wait and retry (training paused, the job still `running`, its
heartbeat alive), `/readyz` must say the store is unreachable, and once the endpoint is
back the job finishes with every checkpoint, the final model and the accuracy matrix of an
uninterrupted run: nothing lost.

Why a proxy and not a moto restart: moto's server keeps its buckets in memory, so a
restarted one would have lost the bucket and everything in it (a real bucket outlives an
outage; moto has no persistence for S3). The worker and the API talk to moto through a TCP
proxy (tests/harness/s3.py) which is stopped (its port closed, its connections cut) and
started again on the same port: the clients see a dead endpoint, the bucket survives.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import httpx
import pytest

from continual_core.spec import ExperimentSpec
from continual_core.trainer import train
from store.migrate import upgrade
from tests.harness.experiments import Store, two_tasks
from tests.harness.processes import service_env, start_api, start_workers, wait_until
from tests.harness.s3 import (
    SECRET,
    TcpProxy,
    aws_variables,
    bucket_keys,
    create_bucket,
    moto_server,
)

pytestmark = [pytest.mark.faults, pytest.mark.slow]

#: Two tasks of 6 epochs: task 1 outlasts the moment it takes to stop the endpoint.
SPEC = two_tasks(epochs=12)
TASK_EPOCHS = SPEC["epochs"] // 2
#: How long the endpoint stays away (seconds): several retries of the worker.
OUTAGE_S = 12.0


@pytest.fixture
def endpoint(tmp_path) -> Iterator[TcpProxy]:
    """moto's S3 server behind a TCP proxy that can be stopped and started again."""
    with moto_server(tmp_path / "moto.log") as url:
        proxy = TcpProxy(int(url.rsplit(":", 1)[1]))
        proxy.start()
        try:
            yield proxy
        finally:
            proxy.stop()


def readiness(url: str) -> tuple[int, dict]:
    response = httpx.get(f"{url}/readyz", timeout=15)
    return response.status_code, response.json()["checks"]


def test_a_store_outage_mid_job_is_waited_out_and_nothing_is_lost(
    tmp_path, endpoint, pg_database, private_redis, processes, say
):
    upgrade(pg_database)
    bucket = create_bucket(endpoint.url)
    env = service_env(pg_database, private_redis.url, tmp_path / "data", fast_recovery=True,
                      EWC_ARTIFACTS_URL=f"s3://{bucket}/team", **aws_variables(endpoint.url))
    (worker,) = start_workers(processes, env)
    _, api = start_api(processes, env)
    assert readiness(api) == (200, {"database": "ok", "broker": "ok", "storage": "ok"})
    store = Store(pg_database, private_redis.url)
    try:
        experiment_id = store.submit(store.user("alice"), SPEC)
        worker.wait_for_line(lambda line: "event=run_start" in line, 120)
        endpoint.stop()
        away_at = time.monotonic()
        status, checks = readiness(api)
        assert status == 503 and checks["storage"].startswith("error: artifact store: check")
        assert checks["database"] == "ok" and "cannot reach" in checks["storage"]
        first_wait = worker.wait_for_line(lambda line: "event=storage_wait" in line, 120)
        assert "while=publish_checkpoint" in first_wait
        epochs_when_waiting = len(store.epochs(experiment_id))
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - away_at)))
        job = store.job(experiment_id)
        assert job["status"] == "running" and job["error"] is None, job
        assert len(store.epochs(experiment_id)) == epochs_when_waiting == TASK_EPOCHS  # paused
        waits = sum("event=storage_wait" in line for line in worker.lines)
        endpoint.start()
        back = worker.wait_for_line(lambda line: "event=storage_back" in line, 60)
        wait_until("/readyz to be ready again", lambda: readiness(api)[0] == 200, 30)
        job = store.wait_for(experiment_id, {"succeeded", "failed", "cancelled"}, timeout=180)
        assert job["status"] == "succeeded" and job["attempts"] == 1, job
        matrix, epochs = store.task_rows(experiment_id), store.epochs(experiment_id)
        waited = re.search(r"waited_s=\S+", back).group(0)
    finally:
        store.close()
    say(f"endpoint away {OUTAGE_S:.0f} s from the job's start (task 1 unpublished): /readyz 503 ({checks['storage']}), "
        f"{waits} retries logged, training paused at epoch {epochs_when_waiting}/{SPEC['epochs']}, job kept "
        f"running; back: {waited}, job succeeded")

    direct = train(ExperimentSpec.model_validate(SPEC), dataset_cache=tmp_path / "datasets")
    assert matrix == direct["accuracy_matrix"]
    assert [e["loss"] for e in epochs] == [e["loss"] for e in direct["epochs"]]
    keys = set(bucket_keys(endpoint.url, bucket))
    prefix = f"team/experiments/{experiment_id}/"
    assert {f"{prefix}task-1/.manifest.json", f"{prefix}task-2/.manifest.json",
            f"{prefix}model.keras"} <= keys
    assert any(k.startswith(f"{prefix}tensorboard/") for k in keys)
    assert SECRET not in worker.text and "sEcReT" not in worker.text
    say(f"nothing lost: task-1, task-2, model.keras and the event file in the bucket; "
        f"accuracy matrix == uninterrupted run's; no secret in the worker's {len(worker.lines)} "
        "log lines")
