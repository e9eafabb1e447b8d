"""Fault: a job's host dies in task 2; a worker on another host resumes it from the bucket.

Real processes and servers: two `ewc worker`s standing in for two hosts (each its own
EWC_DATA_DIR, so its own disk), one S3 bucket (moto's server) as EWC_ARTIFACTS_URL for
both, PostgreSQL and a redis-server. The worker that claims the job is SIGKILLed in task 2,
after task 1's checkpoint was published; its data folder is moved away at once (the dead
host's disk is unreachable). The other worker takes the job over when the heartbeat
expires, fetches task 1's checkpoint from the bucket and must end with exactly the accuracy
matrix and losses of an uninterrupted run. No credential may appear in any log line.
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Iterator

import pytest

from continual_core.spec import ExperimentSpec
from continual_core.trainer import train
from store.migrate import upgrade
from tests.harness.experiments import Store, two_tasks
from tests.harness.processes import claimed_ids, service_env, start_workers, wait_until
from tests.harness.s3 import SECRET, aws_variables, bucket_keys, create_bucket, moto_server

pytestmark = [pytest.mark.faults, pytest.mark.slow]

#: Two tasks of 20 epochs each: task 2 is long enough to be killed in.
SPEC = two_tasks(epochs=40)


@pytest.fixture
def s3_endpoint(tmp_path) -> Iterator[str]:
    with moto_server(tmp_path / "moto.log") as endpoint:
        yield endpoint


def logged(line: str, name: str) -> str:
    """The value of `name=` in a log line."""
    return re.search(rf"\b{name}=(\S+)", line).group(1)


def test_a_job_whose_host_died_resumes_on_another_host_from_the_bucket(
    tmp_path, s3_endpoint, pg_database, private_redis, processes, say
):
    upgrade(pg_database)
    bucket = create_bucket(s3_endpoint)
    shared = {"EWC_ARTIFACTS_URL": f"s3://{bucket}/fleet", **aws_variables(s3_endpoint)}
    hosts = {name: tmp_path / f"host-{name}" for name in ("a", "b")}
    workers = []
    for name, data_dir in hosts.items():
        env = service_env(pg_database, private_redis.url, data_dir, fast_recovery=True, **shared)
        (proc,) = start_workers(processes, env)
        proc.name = f"worker-{name}"
        workers.append(proc)
    store = Store(pg_database, private_redis.url)
    try:
        experiment_id = store.submit(store.user("alice"), SPEC)
        wait_until("a worker to claim the job",
                   lambda: any(claimed_ids(w) for w in workers), 60)
        (dead,) = [w for w in workers if claimed_ids(w)]
        (survivor,) = [w for w in workers if w is not dead]
        dead_dir = hosts[dead.name.removeprefix("worker-")]
        published = dead.wait_for_line(
            lambda line: "event=checkpoint_published" in line and " task=1 " in line, 120)
        dead.wait_for_line(lambda line: "event=epoch" in line and " epoch=26 " in line, 120)
        dead.popen.send_signal(signal.SIGKILL)  # no goodbye: the heartbeat just stops
        dead.popen.wait()
        killed_at = time.monotonic()
        gone = dead_dir.rename(dead_dir.with_name(dead_dir.name + "-unreachable"))
        job = store.job(experiment_id)
        assert job["status"] == "running" and job["current_task"] == 2, job
        say(f"SIGKILLed {dead.name} at task 2, epoch {job['current_epoch']}/40 after it "
            f"published task 1 ({logged(published, 'files')} files, "
            f"{logged(published, 'bytes')} bytes in {logged(published, 'seconds')} s); "
            f"its data folder moved to {gone.name}")

        fetched = survivor.wait_for_line(lambda line: "event=checkpoint_fetched" in line, 120)
        resumed = survivor.wait_for_line(lambda line: "event=run_start" in line, 60)
        resumed_after = time.monotonic() - killed_at
        job = store.wait_for(experiment_id, {"succeeded", "failed", "cancelled"}, timeout=240)
        assert job["status"] == "succeeded", job
        assert job["attempts"] == 2 and claimed_ids(survivor) == [experiment_id]
        assert logged(fetched, "task") == "1" and "first_task=2" in resumed
        assert logged(fetched, "source") == f"s3://{bucket}/fleet/experiments/{experiment_id}/task-1"
        assert str(dead_dir) not in survivor.text  # never looked at the dead host's folder
        matrix, epochs = store.task_rows(experiment_id), store.epochs(experiment_id)
    finally:
        store.close()

    direct = train(ExperimentSpec.model_validate(SPEC), dataset_cache=tmp_path / "datasets")
    assert matrix == direct["accuracy_matrix"]
    assert [e["epoch"] for e in epochs] == list(range(1, 41))
    assert [e["loss"] for e in epochs] == [e["loss"] for e in direct["epochs"]]

    keys = bucket_keys(s3_endpoint, bucket)
    prefix = f"fleet/experiments/{experiment_id}/"
    assert {f"{prefix}task-1/.manifest.json", f"{prefix}task-2/.manifest.json",
            f"{prefix}model.keras"} <= set(keys)
    event_files = [k for k in keys if k.startswith(f"{prefix}tensorboard/")
                   and "/events.out.tfevents." in k]  # fmt: skip
    assert len(event_files) == 2  # one written on each host
    assert len({k.rsplit("/", 1)[0] for k in event_files}) == 1  # into the job's one run
    survivor_dir = hosts[survivor.name.removeprefix("worker-")]
    assert not (survivor_dir / "artifacts" / "experiments" / str(experiment_id)).exists()
    for proc in workers:
        assert SECRET not in proc.text and "sEcReT" not in proc.text
    say(f"{survivor.name} fetched task 1 from the bucket ({logged(fetched, 'bytes')} bytes in "
        f"{logged(fetched, 'seconds')} s), resumed at task 2 {resumed_after:.1f} s after the "
        f"kill, succeeded; accuracy matrix {matrix} == uninterrupted run's, all 40 losses "
        f"equal; bucket: task-1, task-2, model.keras, {len(event_files)} event files; "
        "its working copy removed; no secret in either log")
