"""`ewc datasets upload/list/show/delete` and the Python client's dataset calls against a
real server process (uvicorn, real HTTP, SQLite): the upload streams the file, a bad one
ends the command with the server's message (exit 1), a spec names the upload
`user:<name>`, and a delete is refused while a job uses it."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from cli.local_service import api_command
from cli.main import app as ewc_app
from client import Client, ClientError
from common.settings import Settings, get_settings
from tests.fixtures.dashboard import ADMIN_TOKEN
from tests.fixtures.npz import blobs, npz_bytes
from tests.harness.processes import free_port, spawn, wait_healthy

runner = CliRunner()
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def server(session_factory, database_url, redis_url, tmp_path):
    port = free_port()
    env = {
        "EWC_DATABASE_URL": database_url, "EWC_BROKER_URL": redis_url,
        "EWC_DATA_DIR": str(tmp_path / "data"), "EWC_ADMIN_TOKEN": ADMIN_TOKEN,
        "EWC_HOST": "127.0.0.1", "EWC_PORT": str(port), "EWC_MAX_DATASET_MB": "1",
    }  # fmt: skip
    proc = spawn("api", api_command(Settings(host="127.0.0.1", port=port)), env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        yield url, env
    finally:
        proc.stop()


def ewc(server, *args: str):
    url, env = server
    get_settings.cache_clear()
    try:
        return runner.invoke(ewc_app, list(args), env={**env, "EWC_URL": url,
                                                       "EWC_TOKEN": ADMIN_TOKEN})  # fmt: skip
    finally:
        get_settings.cache_clear()


def test_ewc_datasets_commands(server, tmp_path) -> None:
    good = tmp_path / "blobs.npz"
    good.write_bytes(npz_bytes(**blobs(shape=(8, 8), classes=4, train=40, test=12)))
    result = ewc(server, "datasets", "upload", str(good), "--name", "blobs",
                 "--description", "four blobs")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "40 train / 12 test examples of 8×8, 4 classes" in result.output
    assert '"dataset": "user:blobs"' in result.output

    listed = ewc(server, "datasets", "list", "-o", "json")
    assert listed.exit_code == 0, listed.output
    [item] = json.loads(listed.output)["items"]
    assert item["checksum"] == hashlib.sha256(good.read_bytes()).hexdigest()
    assert (item["owner"], item["num_classes"], item["input_shape"]) == ("admin", 4, [8, 8])
    table = ewc(server, "datasets", "list")
    assert "blobs" in table.output and "admin" in table.output
    shown = ewc(server, "datasets", "show", "blobs", "--json")
    assert json.loads(shown.output)["description"] == "four blobs"

    bad = tmp_path / "bad.npz"
    bad.write_bytes(npz_bytes(x_train=np.zeros((3, 2)), y_train=np.zeros(3, np.int64)))
    result = ewc(server, "datasets", "upload", str(bad), "--name", "bad")
    assert result.exit_code == 1
    assert "missing array 'x_test'" in result.output
    big = tmp_path / "big.npz"
    big.write_bytes(npz_bytes(compressed=False, **blobs(shape=(64, 64), train=80, test=1)))
    result = ewc(server, "datasets", "upload", str(big), "--name", "big")
    assert result.exit_code == 1
    assert "larger than this server's limit of 1 MiB (EWC_MAX_DATASET_MB)" in result.output
    result = ewc(server, "datasets", "upload", str(tmp_path / "none.npz"), "--name", "x")
    assert result.exit_code == 1 and "no such file" in result.output

    url, _env = server
    with Client(url, ADMIN_TOKEN) as client:
        assert [d.name for d in client.datasets()] == ["blobs"]
        exp = client.submit({"dataset": "user:blobs", "dataset_update": "switch", "splits": 2,
                             "epochs": 2})  # fmt: skip
        assert exp.spec["user_dataset"]["num_classes"] == 4
        with pytest.raises(ClientError, match="used by queued or running experiments"):
            client.delete_dataset("blobs")
        client.cancel(exp.id)
    result = ewc(server, "datasets", "delete", "blobs")
    assert result.exit_code == 0, result.output
    assert ewc(server, "datasets", "show", "blobs").exit_code == 1
