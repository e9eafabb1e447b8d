"""The client commands against a real API process (uvicorn): `ewc results --plot`,
`ewc sweep`, `ewc artifacts prune`, and `ewc submit --wait`'s event stream."""

from __future__ import annotations

import json
import threading

import httpx
import pytest
from rich.progress import Progress
from typer.testing import CliRunner

from cli import live as live_client
from cli.client import Client
from cli.jobs import wait_for
from cli.local_service import api_command
from cli.main import app as ewc_app
from common.settings import Settings
from store.models import JobStatus
from tests.e2e.conftest import free_port, spawn, wait_healthy
from tests.fixtures.dashboard import ADMIN_TOKEN, png_size, sample_result
from tests.fixtures.events import run_fake_job

runner = CliRunner()
#: Each test starts a server process: SQLite only here (the TestClient tests cover PostgreSQL).
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def server(session_factory, database_url, redis_url, tmp_path):
    """A real uvicorn process on the test database; yields (url, env)."""
    port = free_port()
    env = {
        "EWC_DATABASE_URL": database_url, "EWC_BROKER_URL": redis_url,
        "EWC_DATA_DIR": str(tmp_path / "data"), "EWC_ADMIN_TOKEN": ADMIN_TOKEN,
        "EWC_HOST": "127.0.0.1", "EWC_PORT": str(port), "PORT": str(port),
    }
    proc = spawn("api", api_command(Settings(host="127.0.0.1", port=port)), env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        yield url, env
    finally:
        proc.stop()


@pytest.fixture
def admin(server, session_factory) -> int:
    from sqlalchemy import select

    from store.models import User

    with session_factory() as s:
        return s.scalar(select(User.id).where(User.name == "admin"))


def cli(server, *args: str):
    from common.settings import get_settings

    url, env = server
    get_settings.cache_clear()  # the command reads EWC_* as a fresh process would
    try:
        return runner.invoke(
            ewc_app, [*args], env={**env, "EWC_URL": url, "EWC_TOKEN": ADMIN_TOKEN}
        )
    finally:
        get_settings.cache_clear()


def test_results_plot_saves_the_png(server, admin, make_experiment, tmp_path):
    exp = make_experiment(admin, result=sample_result(3))
    out = tmp_path / "plots" / "my-matrix.png"
    r = cli(server, "results", str(exp), "--plot", str(out))
    assert r.exit_code == 0, r.output
    assert png_size(out.read_bytes()) == (640, 520)
    curves = tmp_path / "c.png"
    assert cli(server, "results", str(exp), "--plot", str(curves)).exit_code == 0
    assert png_size(curves.read_bytes()) == (800, 450)
    r = cli(server, "results", str(exp), "--plot", str(curves), "--plot-kind", "pie")
    assert r.exit_code == 1 and "--plot-kind must be one of" in r.output
    queued = make_experiment(admin, status=JobStatus.queued)
    r = cli(server, "results", str(queued), "--plot", str(curves))
    assert r.exit_code == 1 and "409" in r.output and "no epoch has finished yet" in r.output


def test_list_takes_a_filter_and_a_sort_order(server, admin, make_experiment):
    ids = [make_experiment(admin, spec={"dataset": "digits", "ewc": {"lambda": lam}},
                           summary={"average_accuracy": acc}, name=f"run-{lam:g}")
           for lam, acc in ((1.0, 0.7), (10.0, 0.9), (100.0, 0.8))]  # fmt: skip
    r = cli(server, "list", "--filter", "params.ewc.lambda >= 10", "--order-by",
            "metrics.average_accuracy desc", "--json")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert [e["id"] for e in json.loads(r.output)["items"]] == [ids[1], ids[2]]
    r = cli(server, "list", "--filter", "name like 'run-1%'", "--order-by", "name")
    assert r.exit_code == 0 and "run-10" in r.output and "run-100" in r.output, r.output
    assert "run-1 " in r.output
    r = cli(server, "list", "--filter", "params.ewc.lamda > 1")
    assert r.exit_code == 1, r.output
    assert "unknown key 'params.ewc.lamda' at 1: did you mean ewc.lambda?" in " ".join(r.output.split())


def test_sweep_command(server, admin, session_factory):
    r = cli(server, "sweep", "--dataset", "digits", "--dataset-update", "permute", "--splits", "2",
            "--epochs", "2", "--ewc", "--grid", "ewc.lambda=1,10", "--grid", "seed=0,1,2",
            "--name", "cli")
    assert r.exit_code == 0, r.output
    assert "6 experiments queued" in r.output
    sweep_id = int(r.stdout.strip().splitlines()[-1])
    with httpx.Client(base_url=server[0], headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as h:
        doc = h.get(f"/v1/sweeps/{sweep_id}").json()
    assert doc["grid"] == {"ewc.lambda": [1, 10], "seed": [0, 1, 2]} and len(doc["points"]) == 2
    r = cli(server, "sweep", "--dataset", "digits", "--grid", "ewc.lambda=-1")
    assert r.exit_code == 1 and "grid.ewc.lambda" in r.output
    r = cli(server, "sweep", "--grid", "nonsense")
    assert r.exit_code == 2 and "PATH=V1,V2" in r.output


def test_wait_follows_the_event_stream(server, admin, make_experiment, session_factory):
    exp = make_experiment(admin, status=JobStatus.queued, num_tasks=2, total_epochs=4)
    ready = threading.Event()
    writer = threading.Thread(target=run_fake_job, args=(session_factory, exp, ready))
    writer.start()
    client = Client(server[0], ADMIN_TOKEN)
    seen = []
    original = live_client.stream_events

    def spy(http, experiment_id):
        for event in original(http, experiment_id):
            seen.append(event[0])
            ready.set()
            yield event

    live_client.stream_events = spy
    try:
        final = wait_for(client, exp)
    finally:
        live_client.stream_events = original
        ready.set()
        writer.join(10)
    assert final["status"] == "succeeded"
    assert seen[0] == "status" and seen[-1] == "end" and seen.count("epoch") == 4


def test_follow_events_gives_none_when_no_stream(server, admin):
    client = Client(server[0], ADMIN_TOKEN)
    with Progress() as progress:
        bar = progress.add_task("x", id=1, acc="")
        assert live_client.follow_events(client, 999, progress, bar) is None  # 404


def test_artifacts_prune_command(server, admin, make_experiment, tmp_path):
    from store.artifacts import experiment_dir

    old = make_experiment(admin, finished_days_ago=45)
    folder = experiment_dir(tmp_path / "data" / "artifacts", old)
    (folder / "task-1").mkdir(parents=True)
    (folder / "task-1" / "w.h5").write_bytes(b"x" * 2000)
    (folder / "model.keras").write_bytes(b"m")
    r = cli(server, "artifacts", "prune", "--dry-run")
    assert r.exit_code == 0 and "would delete 1 checkpoints" in r.output
    assert (folder / "task-1").exists()
    r = cli(server, "artifacts", "prune")
    assert r.exit_code == 0 and "deleted 1 checkpoints" in r.output
    assert not (folder / "task-1").exists() and (folder / "model.keras").exists()
