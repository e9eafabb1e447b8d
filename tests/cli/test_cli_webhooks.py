"""`ewc webhooks` and the Python client's webhook calls against a real API process
(uvicorn): add (the secret printed once), list, test (a ping a dispatcher delivers to a real
receiving HTTP server), deliveries, remove; a bad URL is the server's 422, one line."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cli.local_service import api_command
from cli.main import app as ewc_app
from client import ApiError, Client
from common.settings import Settings, get_settings
from tests.fixtures.dashboard import ADMIN_TOKEN
from tests.harness.processes import free_port, spawn, wait_healthy
from tests.harness.webhook_receiver import Receiver, verify
from worker.webhooks import dispatch_due

runner = CliRunner()
#: A server process per test: SQLite only (the TestClient tests cover PostgreSQL).
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def server(session_factory, database_url, redis_url, tmp_path):
    """A real uvicorn process on the test database; (url, env)."""
    port = free_port()
    env = {
        "EWC_DATABASE_URL": database_url, "EWC_BROKER_URL": redis_url,
        "EWC_DATA_DIR": str(tmp_path / "data"), "EWC_ADMIN_TOKEN": ADMIN_TOKEN,
        "EWC_HOST": "127.0.0.1", "EWC_PORT": str(port), "PORT": str(port),
    }  # fmt: skip
    proc = spawn("api", api_command(Settings(host="127.0.0.1", port=port)), env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        yield url, env
    finally:
        proc.stop()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


def cli(server, *args: str):
    url, env = server
    get_settings.cache_clear()
    try:
        return runner.invoke(
            ewc_app, ["webhooks", *args], env={**env, "EWC_URL": url, "EWC_TOKEN": ADMIN_TOKEN}
        )
    finally:
        get_settings.cache_clear()


def test_ewc_webhooks_and_the_python_client(server, receiver, session_factory, database_url):
    added = cli(server, "add", receiver.url, "--event", "experiment.finished", "-o", "json")
    assert added.exit_code == 0, added.output
    hook = json.loads(added.output)
    assert hook["secret"].startswith("whsec_") and hook["events"] == ["experiment.finished"]

    human = cli(server, "list")
    assert human.exit_code == 0 and "whsec_" in human.output, human.output
    listed = cli(server, "list", "-o", "csv").output
    assert receiver.url in listed and hook["secret_prefix"] in listed
    assert hook["secret"] not in human.output + listed

    pinged = cli(server, "test", str(hook["id"]))
    assert pinged.exit_code == 0 and "ping queued" in pinged.output
    dispatch_due(session_factory, Settings(database_url=database_url))
    [call] = receiver.received
    assert call.headers["x-ewc-event"] == "ping" and verify(hook["secret"], call)

    shown = cli(server, "deliveries", str(hook["id"]), "-o", "csv")
    assert shown.exit_code == 0, shown.output
    header, row = shown.output.strip().splitlines()
    assert header == "id,webhook_id,event,status,attempts,answer,created_at"
    assert row.split(",")[2:6] == ["ping", "delivered", "1", "200"]

    removed = cli(server, "remove", str(hook["id"]))
    assert removed.exit_code == 0 and f"webhook #{hook['id']} removed" in removed.output
    assert json.loads(cli(server, "list", "-o", "json").output) == {"items": []}
    gone = cli(server, "deliveries", str(hook["id"]))
    assert gone.exit_code == 1 and "does not exist (or is not yours)" in gone.output

    # The Python client, on the same server (one process start per test file is enough).
    with Client(server[0], ADMIN_TOKEN) as ewc:
        hook = ewc.add_webhook(receiver.url)
        assert hook.events == ["experiment.finished", "sweep.finished"]
        assert [h.id for h in ewc.webhooks()] == [hook.id] and ewc.webhook(hook.id).url == hook.url
        ping = ewc.test_webhook(hook.id)
        assert (
            [d.id for d in ewc.deliveries(hook.id)] == [ping.id] == [d.id for d in ewc.deliveries()]
        )
        with pytest.raises(ApiError) as refused:
            ewc.add_webhook("ftp://example.org/")
        assert refused.value.status_code == 422 and refused.value.problems[0].field == "url"
        ewc.remove_webhook(hook.id)
        assert ewc.webhooks(all=True) == []
