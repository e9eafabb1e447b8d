"""The overlay from the Python client (`Client.compare_plot`) and the command line (`ewc
compare ... --plot`), against a real API process (uvicorn) over real HTTP."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cli.local_service import api_command
from cli.main import app
from client import ApiError, Client
from common.settings import Settings
from tests.fixtures.dashboard import ADMIN_TOKEN, png_size, sample_result
from tests.harness.processes import free_port, spawn, wait_healthy

#: One server process: SQLite only (test_compare_plot.py covers PostgreSQL in-process).
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def server(session_factory, database_url, redis_url, tmp_path) -> str:
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
        yield url
    finally:
        proc.stop()


@pytest.fixture
def runs(server, session_factory, make_experiment) -> tuple[int, int, int]:
    from sqlalchemy import select

    from store.models import User

    with session_factory() as s:
        admin = s.scalar(select(User.id).where(User.name == "admin"))
    plain = {"dataset": "digits", "splits": 3, "ewc": None, "seed": 0}
    ewc = {"dataset": "digits", "splits": 3, "ewc": {"lambda": 10.0}, "seed": 0}
    return (make_experiment(admin, spec=plain, result=sample_result(3), name="plain"),
            make_experiment(admin, spec=ewc, result=sample_result(3, 3), name="ewc"),
            make_experiment(admin, spec={"dataset": "digits", "splits": 5},
                            result=sample_result(5), name="five"))  # fmt: skip


def test_the_client_fetches_every_kind(server, runs):
    a, b, five = runs
    with Client(server, ADMIN_TOKEN) as ewc:
        assert png_size(ewc.compare_plot([a, b, five])) == (960, 540)
        for kind in ("average", "loss"):
            assert png_size(ewc.compare_plot([a, b, five], kind)) == (960, 540)
        assert png_size(ewc.compare_plot([a, b], "diff")) == (720, 560)
        with pytest.raises(ApiError) as err:
            ewc.compare_plot([a, five], "diff")
        assert err.value.status_code == 422 and "3 tasks" in str(err.value)


def test_ewc_compare_saves_the_overlay_and_prints_the_table(server, runs, tmp_path):
    a, b, five = runs
    cli = CliRunner()
    common = ["--url", server, "--token", ADMIN_TOKEN]
    out = tmp_path / "plots" / "overlay.png"
    r = cli.invoke(app, ["compare", str(a), str(b), str(five), "--plot", str(out), *common])
    assert r.exit_code == 0, r.output
    assert png_size(out.read_bytes()) == (960, 540) and "accuracy overlay" in r.output
    diff = tmp_path / "ewc-diff.png"  # the kind from the name
    r = cli.invoke(app, ["compare", str(a), str(b), "--plot", str(diff), *common])
    assert r.exit_code == 0 and png_size(diff.read_bytes()) == (720, 560), r.output
    r = cli.invoke(app, ["compare", str(a), str(b), "--plot", str(out), "--kind", "loss", *common])
    assert r.exit_code == 0 and "loss overlay" in r.output
    r = cli.invoke(app, ["compare", str(a), str(five), "--plot", str(diff), *common])
    assert r.exit_code == 1 and "3 tasks" in r.output  # the server's 422, one line
    r = cli.invoke(app, ["compare", str(a), "--plot", str(out), "--kind", "pie", *common])
    assert r.exit_code == 1 and "--kind must be one of accuracy, average, loss, diff" in r.output

    r = cli.invoke(app, ["compare", str(a), str(b), *common])
    assert r.exit_code == 0, r.output
    assert "Compared experiments" in r.output and "ewc.lambda" in r.output
    r = cli.invoke(app, ["compare", str(a), str(b), "-o", "json", *common])
    assert [e["id"] for e in json.loads(r.output)["experiments"]] == [a, b]
    r = cli.invoke(app, ["compare", str(a), str(b), "-o", "csv", *common])
    assert r.output.splitlines()[0] == "id,name,owner,status,average_accuracy,bwt,forgetting"
