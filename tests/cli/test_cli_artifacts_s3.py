"""`ewc artifacts prune` on a bucket (a REAL moto S3 server, tests/harness/s3.py): the
published checkpoints of experiments past the retention go from the store (and leftover
working copies from the local folder), in the lines the local store prints; final models,
TensorBoard files and recent experiments stay; a store that cannot be reached ends the
command with its message, never the secret key."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from cli.main import app as ewc_app
from common.settings import get_settings
from common.storage import open_store
from tests.harness.processes import free_port
from tests.harness.s3 import SECRET, aws_variables, bucket_keys, create_bucket, moto_server

runner = CliRunner()


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory) -> Iterator[str]:
    with moto_server(tmp_path_factory.mktemp("moto") / "moto.log") as url:
        yield url


@pytest.fixture
def bucket(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    for name, value in aws_variables(endpoint).items():
        monkeypatch.setenv(name, value)
    return create_bucket(endpoint)


def prune(database_url: str, data_dir, url: str, *args: str):
    get_settings.cache_clear()  # the command reads EWC_* as a fresh process would
    try:
        return runner.invoke(ewc_app, ["artifacts", "prune", "--days", "30", *args], env={
            "EWC_DATABASE_URL": database_url, "EWC_DATA_DIR": str(data_dir),
            "EWC_ARTIFACTS_URL": url})  # fmt: skip
    finally:
        get_settings.cache_clear()


def test_prune_deletes_old_checkpoints_in_the_bucket(
    bucket, endpoint, database_url, session_factory, make_user, make_experiment, tmp_path,
    monkeypatch,
):
    url = f"s3://{bucket}/team"
    store = open_store(url)
    owner = make_user("bob")
    old = make_experiment(owner, finished_days_ago=45)
    recent = make_experiment(owner, finished_days_ago=2)
    src = tmp_path / "ckpt"
    src.mkdir()
    (src / "state.npz").write_bytes(b"s" * 1500)
    (src / "history.json").write_bytes(b"{}")
    for exp in (old, recent):
        for task in (1, 2):
            store.publish_folder(f"experiments/{exp}/task-{task}", src)
        store.put_bytes(f"experiments/{exp}/model.keras", b"model")
        store.put_bytes(f"experiments/{exp}/tensorboard/train/events.1", b"tb")
    leftover = tmp_path / "data" / "artifacts" / "experiments" / str(old) / "task-2"
    leftover.mkdir(parents=True)
    (leftover / "state.npz").write_bytes(b"w" * 10)
    before = bucket_keys(endpoint, bucket)

    r = prune(database_url, tmp_path / "data", url, "--dry-run")
    assert r.exit_code == 0, r.output
    assert f"would delete s3://{bucket}/team/experiments/{old}/task-1 (experiment {old}, 1502 bytes)" \
        in r.output
    assert f"s3://{bucket}/team/experiments/{recent}/" not in r.output
    assert "would delete 3 checkpoints" in r.output  # 2 in the bucket, 1 working copy
    assert bucket_keys(endpoint, bucket) == before and leftover.exists()

    r = prune(database_url, tmp_path / "data", url)
    assert r.exit_code == 0, r.output
    assert f"deleted s3://{bucket}/team/experiments/{old}/task-2 (experiment {old}, 1502 bytes)" \
        in r.output
    assert "deleted 3 checkpoints" in r.output and f"s3://{bucket}/team)" in r.output
    assert not leftover.exists()
    assert store.checkpoints(f"experiments/{old}") == []
    assert [c.task for c in store.checkpoints(f"experiments/{recent}")] == [1, 2]
    left = {o.key for o in store.list(f"experiments/{old}")}
    assert left == {f"experiments/{old}/model.keras", f"experiments/{old}/tensorboard/train/events.1"}
    assert not any(f"experiments/{old}/task-" in k for k in bucket_keys(endpoint, bucket))

    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # nobody there
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    make_experiment(owner, finished_days_ago=60)
    r = prune(database_url, tmp_path / "data", url)
    assert r.exit_code == 1 and "artifact store" in r.output, r.output
    assert SECRET not in r.output
