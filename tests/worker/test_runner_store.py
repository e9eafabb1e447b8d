"""`worker.runner` on a remote artifact store (a real moto S3 server): a job's checkpoints,
event files and final model end up in the bucket and its working copy is removed; a job
handed back on one "host" (data folder) is resumed on another from the bucket alone and
ends as an uninterrupted run; a store that stays away fails the job with a readable line;
no credential ever reaches a log line or an error.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from common.settings import Settings
from continual_core.spec import ExperimentSpec
from continual_core.trainer import train
from store import claims
from store.db import unit_of_work
from store.models import Experiment, JobStatus, TaskResult
from tests.harness.processes import free_port
from tests.harness.s3 import SECRET, aws_variables, bucket_keys, create_bucket, moto_server
from worker.artifacts import WorkerArtifacts
from worker.runner import checkpoint_dir, run_job
from worker.wakeups import prune_once

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

TINY = {"dataset": "digits", "model": "mlp", "dataset_update": "permute", "splits": 2,
        "epochs": 2, "seed": 0}


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory) -> Iterator[str]:
    with moto_server(tmp_path_factory.mktemp("moto") / "moto.log") as url:
        yield url


@pytest.fixture
def bucket(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    for name, value in aws_variables(endpoint).items():
        monkeypatch.setenv(name, value)
    return create_bucket(endpoint)


def host(tmp_path: Path, name: str, database_url: str, url: str, **extra) -> Settings:
    """The settings of a worker on host `name`: its own data folder, the shared store."""
    return Settings(_env_file=None, data_dir=tmp_path / name, database_url=database_url,
                    dataset_cache=tmp_path / "datasets", artifacts_url=url, heartbeat_s=0.05,
                    **extra)


def claim_and_run(session_factory, settings: Settings, worker: str, shutdown=None):
    with unit_of_work(session_factory) as s:
        job = claims.claim_next_job(s, ["cpu"], worker, 30, 3)
    assert job is not None
    return job.id, run_job(job, worker=worker, settings=settings, sessions=session_factory,
                           device="CPU", shutting_down=shutdown,
                           artifacts=WorkerArtifacts.from_settings(settings))


def matrix(session_factory, job_id: int) -> list[list[float]]:
    with session_factory() as s:
        return [r.test_accuracy for r in s.scalars(
            select(TaskResult).where(TaskResult.experiment_id == job_id).order_by(TaskResult.task))]


def test_a_job_on_s3_stores_everything_and_keeps_no_working_copy(
    tmp_path, bucket, endpoint, database_url, session_factory, make_user, make_job, caplog
):
    caplog.set_level(logging.INFO, logger="ewc.worker")
    settings = host(tmp_path, "a", database_url, f"s3://{bucket}/team")
    job_id = make_job(make_user("alice"), spec=TINY)
    _, outcome = claim_and_run(session_factory, settings, "w1")
    assert outcome.status is JobStatus.succeeded, outcome
    keys = bucket_keys(endpoint, bucket)
    prefix = f"team/experiments/{job_id}/"
    assert f"{prefix}model.keras" in keys
    assert {f"{prefix}task-1/.manifest.json", f"{prefix}task-2/.manifest.json"} <= set(keys)
    assert any(k.startswith(f"{prefix}tensorboard/{job_id}-") and "/events.out.tfevents." in k
               for k in keys)  # in the job's run folder (worker.tensorboard.run_name)
    store = settings.artifact_store()
    assert [c.task for c in store.checkpoints(f"experiments/{job_id}")] == [1, 2]
    assert set(store.latest_checkpoint(f"experiments/{job_id}").files) == {"history.json",
                                                                           "state.npz"}
    assert not checkpoint_dir(settings, job_id).exists()  # only a working copy, removed
    assert not any((tmp_path / "a" / "cache").rglob("*.npz"))
    assert "event=checkpoint_published" in caplog.text and "event=model_stored" in caplog.text
    assert SECRET not in caplog.text


def test_a_job_handed_back_on_one_host_resumes_on_another_from_the_bucket(
    tmp_path, bucket, database_url, session_factory, make_user, make_job, caplog
):
    caplog.set_level(logging.INFO, logger="ewc.worker")
    url = f"s3://{bucket}/team"
    spec = {**TINY, "epochs": 10, "batch_size": 8}
    job_id = make_job(make_user("alice"), spec=spec)
    first, second = host(tmp_path, "a", database_url, url), host(tmp_path, "b", database_url, url)
    store = first.artifact_store()
    shutdown = threading.Event()

    def stop_after_task_1() -> None:  # once task 1's checkpoint is in the bucket
        while store.latest_checkpoint(f"experiments/{job_id}") is None:
            shutdown.wait(0.02)
        shutdown.set()

    threading.Thread(target=stop_after_task_1, daemon=True).start()
    _, outcome = claim_and_run(session_factory, first, "w1", shutdown)
    assert outcome.status is None  # handed back
    shutil.rmtree(tmp_path / "a")  # host A is gone with its disk
    caplog.clear()

    _, outcome = claim_and_run(session_factory, second, "w2")
    assert outcome.status is JobStatus.succeeded, outcome
    fetched = [r.getMessage() for r in caplog.records if "event=checkpoint_fetched" in r.getMessage()]
    assert len(fetched) == 1 and " task=1 " in fetched[0] and f"s3://{bucket}/team/" in fetched[0]
    assert any("first_task=2" in r.getMessage() for r in caplog.records)
    direct = train(ExperimentSpec.model_validate(spec), dataset_cache=tmp_path / "datasets")
    assert matrix(session_factory, job_id) == direct["accuracy_matrix"]
    assert [c.task for c in store.checkpoints(f"experiments/{job_id}")] == [1, 2]
    assert not (tmp_path / "a").exists()
    assert SECRET not in caplog.text


def test_a_store_that_stays_away_fails_the_job_without_a_secret(
    tmp_path, bucket, database_url, session_factory, make_user, make_job, caplog, monkeypatch
):
    caplog.set_level(logging.INFO)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # nothing there
    settings = host(tmp_path, "a", database_url, f"s3://{bucket}/team", db_retry_s=6)  # room for a cold boto3 import
    job_id = make_job(make_user("alice"), spec=TINY)
    _, outcome = claim_and_run(session_factory, settings, "w1")
    assert outcome.status is JobStatus.failed
    with session_factory() as s:
        error = s.get(Experiment, job_id).error
    assert error.startswith("StorageUnavailable: artifact store:") and "cannot reach" in error
    assert f"s3://{bucket}/team" in error and "\n" not in error
    assert "event=storage_wait" in caplog.text
    assert SECRET not in caplog.text and SECRET not in error and "sEcReT" not in caplog.text


def test_retention_prunes_the_checkpoints_in_the_bucket_and_keeps_the_model(
    tmp_path, bucket, endpoint, database_url, session_factory, make_user, make_job, caplog
):
    caplog.set_level(logging.INFO, logger="ewc.worker")
    settings = host(tmp_path, "a", database_url, f"s3://{bucket}/team")
    owner = make_user("alice")
    old, recent = make_job(owner, spec=TINY), make_job(owner, spec=TINY)
    for _ in range(2):
        assert claim_and_run(session_factory, settings, "w1")[1].status is JobStatus.succeeded
    with unit_of_work(session_factory) as s:
        s.get(Experiment, old).finished_at -= timedelta(days=settings.artifact_retention_days + 1)
    store, done = settings.artifact_store(), set()
    assert prune_once(session_factory, settings, store, done) == 2  # task-1 and task-2 of `old`
    assert store.checkpoints(f"experiments/{old}") == []
    assert [c.task for c in store.checkpoints(f"experiments/{recent}")] == [1, 2]
    left = {k.removeprefix(f"team/experiments/{old}/").split("/")[0]
            for k in bucket_keys(endpoint, bucket) if k.startswith(f"team/experiments/{old}/")}
    assert left == {"model.keras", "tensorboard"}
    assert done == {old}
    assert prune_once(session_factory, settings, store, done) == 0  # not listed again
    assert caplog.text.count("event=checkpoint_pruned") == 2
