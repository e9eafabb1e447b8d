"""Artifacts over HTTP from a REAL S3 endpoint (moto's server behind a TCP proxy,
tests/harness/s3.py): what the worker's own code (`worker.artifacts.JobArtifacts`) stored
for a job is listed by the API in the local store's shape, the model downloads byte for
byte, a checkpoint as a zip of its files; a missing key is a 404, an endpoint that went
away a 503 with Retry-After, and the secret key shows up in no response and no log line.
"""

from __future__ import annotations

import io
import json
import logging
import os
import zipfile
from collections.abc import Iterator
from hashlib import sha256
from pathlib import Path

import httpx
import pytest

from common.storage import ChecksumCache, open_store
from continual_core.events import TaskEnd
from tests.fixtures.api_client import ADMIN_TOKEN
from tests.fixtures.dashboard import log_in
from tests.harness.s3 import (
    ACCESS_KEY,
    SECRET,
    TcpProxy,
    aws_variables,
    bucket_keys,
    create_bucket,
    moto_server,
)
from worker.artifacts import JobArtifacts, WorkerArtifacts

MODEL = os.urandom(700_000)  # several chunks of a stream
STATE = os.urandom(300_000)


@pytest.fixture(scope="module")
def moto(tmp_path_factory) -> Iterator[str]:
    with moto_server(tmp_path_factory.mktemp("moto") / "moto.log") as url:
        yield url


@pytest.fixture
def proxy(moto: str) -> Iterator[TcpProxy]:
    """The endpoint the API and the worker talk to: stopping it takes S3 away."""
    proxy = TcpProxy(httpx.URL(moto).port)
    proxy.start()
    yield proxy
    proxy.stop()


@pytest.fixture
def bucket(proxy: TcpProxy, monkeypatch: pytest.MonkeyPatch) -> str:
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    for name, value in aws_variables(proxy.url).items():
        monkeypatch.setenv(name, value)
    return create_bucket(proxy.url)


def worker_writes(url: str, experiment_id: int, work: Path) -> None:
    """What a worker on another host leaves in the store after two tasks: each task's
    checkpoint published, TensorBoard files, the final model (the worker's own code)."""
    store = open_store(url)
    job = JobArtifacts(experiment_id, work, WorkerArtifacts(store, ChecksumCache(work.parent / "cache")))
    assert job.prepare() is None  # nothing to resume: a fresh job
    for task in (1, 2):
        folder = work / f"task-{task}"
        (folder / "nested").mkdir(parents=True)
        (folder / "history.json").write_text(json.dumps({"task": task}))
        (folder / "state.npz").write_bytes(STATE[: 1000 * task] + bytes([task]))
        (folder / "nested" / "extra.bin").write_bytes(b"E" * task)
        (work / "tensorboard" / "train").mkdir(parents=True, exist_ok=True)
        (work / "tensorboard" / "train" / f"events.{task}").write_bytes(b"tb" * task)
        job.on_task_end(TaskEnd(task=task, test_accuracy=[0.9], checkpoint=str(folder)))
        job.should_stop()  # the worker's publish point
    (work / "model.keras").write_bytes(MODEL)
    job.finish(model=True)
    assert job.synced and job.published == [1, 2]


@pytest.fixture
def s3_app(bucket, make_client, make_user, make_experiment, tmp_path):
    url = f"s3://{bucket}/team"
    exp = make_experiment(make_user("bob"), num_tasks=2)
    worker_writes(url, exp, tmp_path / "host-b" / "work")
    client = make_client(artifacts_url=url, data_dir=tmp_path / "host-a")
    client.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
    return client, exp


def no_secret(*texts: str | bytes) -> None:
    for text in texts:
        text = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
        assert SECRET not in text and ACCESS_KEY not in text


def test_the_api_lists_and_serves_what_a_worker_on_another_host_stored(s3_app, bucket, proxy, caplog):
    caplog.set_level(logging.DEBUG)
    api, exp = s3_app
    assert not (Path(api.app.state.settings.resolved_artifacts_dir()) / "experiments").exists()
    r = api.get(f"/v1/experiments/{exp}/artifacts")
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert [(i["path"], i["kind"], i["size"], i["files"]) for i in items] == [
        ("model.keras", "model", len(MODEL), 1),
        ("task-1.zip", "checkpoint", len(json.dumps({"task": 1})) + 1001 + 1, 3),
        ("task-2.zip", "checkpoint", len(json.dumps({"task": 2})) + 2001 + 2, 3),
        ("tensorboard.zip", "tensorboard", 2 + 4, 2),
    ]
    assert items[1]["url"] == f"/v1/experiments/{exp}/artifacts/task-1.zip"
    assert "s3://" not in r.text and "X-Amz" not in r.text  # no store URL, no presigning

    r = api.get(f"/v1/experiments/{exp}/artifacts/model.keras")
    assert r.status_code == 200 and r.content == MODEL
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["content-length"] == str(len(MODEL))
    assert f"experiment-{exp}-model.keras" in r.headers["content-disposition"]

    r = api.get(f"/v1/experiments/{exp}/artifacts/task-2.zip")
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        assert zf.testzip() is None
        assert sorted(zf.namelist()) == ["history.json", "nested/extra.bin", "state.npz"]
        assert zf.read("state.npz") == STATE[:2000] + b"\x02"
        assert zf.read("nested/extra.bin") == b"EE"
    r = api.get(f"/v1/experiments/{exp}/artifacts/tensorboard.zip")
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        assert {n: zf.read(n) for n in zf.namelist()} == {"train/events.1": b"tb",
                                                           "train/events.2": b"tbtb"}
    r = api.get(f"/v1/experiments/{exp}/artifacts/task-1/state.npz")  # one file of a checkpoint
    assert r.status_code == 200 and r.content == STATE[:1000] + b"\x01"

    for missing in ("nothing.bin", "task-9.zip", "task-1/nothing", "task-1/.manifest.json",
                    ".manifest.json", "task-1//state.npz", "model.keras/"):
        r = api.get(f"/v1/experiments/{exp}/artifacts/{missing}")
        assert r.status_code == 404, (missing, r.text)
    r = api.get(f"/v1/experiments/{exp}/artifacts/task-1")
    assert r.status_code == 404 and "task-1.zip" in r.json()["detail"]
    r = api.get(f"/v1/experiments/{exp}/artifacts/..%2F..%2Fmodel.keras")
    assert r.status_code in (404, 422)
    assert api.get(f"/v1/experiments/{exp + 99}/artifacts").status_code == 404

    # The experiment page lists them and its links download them (session cookie).
    del api.headers["Authorization"]
    assert log_in(api, ADMIN_TOKEN).status_code == 303
    page = api.get(f"/ui/experiments/{exp}")
    assert page.status_code == 200 and f'/ui/experiments/{exp}/artifacts/task-2.zip' in page.text
    r = api.get(f"/ui/experiments/{exp}/artifacts/model.keras")
    assert r.status_code == 200 and r.content == MODEL
    assert api.get(f"/ui/experiments/{exp}/artifacts/task-7.zip").status_code == 404
    no_secret(page.text, caplog.text)
    assert any(k.endswith(".manifest.json") for k in bucket_keys(proxy.url, bucket))


def test_a_store_that_went_away_is_a_503_with_retry_after_and_no_secret(s3_app, proxy, caplog):
    caplog.set_level(logging.DEBUG)
    api, exp = s3_app
    proxy.stop()
    bodies = []
    for path in ("", "/model.keras", "/task-1.zip"):
        r = api.get(f"/v1/experiments/{exp}/artifacts{path}")
        assert r.status_code == 503, (path, r.text)
        assert r.headers["retry-after"].isdigit()
        assert "artifact store" in r.json()["detail"]
        bodies += [r.text, str(r.headers)]
    del api.headers["Authorization"]
    assert log_in(api, ADMIN_TOKEN).status_code == 303
    page = api.get(f"/ui/experiments/{exp}")  # the page still shows, saying why
    assert page.status_code == 200 and "artifact store" in page.text
    r = api.get(f"/ui/experiments/{exp}/artifacts/model.keras")
    assert r.status_code == 503
    no_secret(*bodies, page.text, r.text, caplog.text)
    proxy.start()  # back: served again
    assert api.get(f"/ui/experiments/{exp}/artifacts/model.keras").content == MODEL


def test_a_local_folder_as_the_store_url_is_where_the_api_reads(make_client, make_user,
                                                                make_experiment, tmp_path):
    """EWC_ARTIFACTS_URL naming a folder: the worker writes there (worker.artifacts.
    working_dir), so the API lists and serves from there, not from <data_dir>/artifacts."""
    shared = tmp_path / "shared-disk"
    exp = make_experiment(make_user("bob"))
    (shared / "experiments" / str(exp) / "task-1").mkdir(parents=True)
    (shared / "experiments" / str(exp) / "model.keras").write_bytes(b"M" * 10)
    (shared / "experiments" / str(exp) / "task-1" / "state.npz").write_bytes(b"S" * 3)
    api = make_client(artifacts_url=str(shared), data_dir=tmp_path / "data")
    api.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
    r = api.get(f"/v1/experiments/{exp}/artifacts")
    assert [(i["path"], i["size"]) for i in r.json()["items"]] == [("model.keras", 10),
                                                                   ("task-1.zip", 3)]
    assert api.get(f"/v1/experiments/{exp}/artifacts/model.keras").content == b"M" * 10


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # a real training run: once
def test_a_model_trained_by_run_job_on_host_b_is_served_by_the_api_on_host_a(
    bucket, make_client, make_user, make_experiment, session_factory, database_url, tmp_path
):
    from common.settings import Settings
    from store import claims
    from store.db import unit_of_work
    from store.models import JobStatus
    from worker.runner import run_job

    url = f"s3://{bucket}/team"
    spec = {"dataset": "digits", "model": "mlp", "dataset_update": "permute", "splits": 2,
            "epochs": 2, "seed": 0}
    exp = make_experiment(make_user("bob"), status=JobStatus.queued, spec=spec)
    host_b = Settings(_env_file=None, data_dir=tmp_path / "b", database_url=database_url,
                      dataset_cache=tmp_path / "datasets", artifacts_url=url, heartbeat_s=0.05)
    with unit_of_work(session_factory) as s:
        job = claims.claim_next_job(s, ["cpu"], "w-b", 30, 3)
    assert job is not None and job.id == exp
    outcome = run_job(job, worker="w-b", settings=host_b, sessions=session_factory, device="CPU",
                      artifacts=WorkerArtifacts.from_settings(host_b))
    assert outcome.status is JobStatus.succeeded, outcome

    api = make_client(artifacts_url=url, data_dir=tmp_path / "a")
    api.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
    items = {i["path"]: i for i in api.get(f"/v1/experiments/{exp}/artifacts").json()["items"]}
    assert {"model.keras", "task-1.zip", "task-2.zip", "tensorboard.zip"} <= set(items)
    store = open_store(url)
    r = api.get(f"/v1/experiments/{exp}/artifacts/model.keras")
    assert r.status_code == 200 and r.content == store.get_bytes(f"experiments/{exp}/model.keras")
    assert zipfile.is_zipfile(io.BytesIO(r.content)) and items["model.keras"]["size"] == len(r.content)
    r = api.get(f"/v1/experiments/{exp}/artifacts/task-2.zip")
    published = store.published(f"experiments/{exp}/task-2")
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        assert sorted(zf.namelist()) == sorted(published) == ["history.json", "state.npz"]
        for rel, info in published.items():
            assert sha256(zf.read(rel)).hexdigest() == info.sha256
    assert items["task-2.zip"]["size"] == sum(f.size for f in published.values())
