"""The Python client (`client.Client`) against a real API process (uvicorn): its models read
every answer back to the very JSON the server sent, listings are walked to the end by
cursor, `wait` follows the event stream, downloads arrive whole, and refusals come back as
`ApiError` (422 with each problem, 401) or `Unreachable`."""

from __future__ import annotations

import sys
import threading

import httpx
import pytest

from cli.local_service import api_command
from client import ApiError, Client, Unreachable
from common.settings import Settings
from store.models import JobStatus
from tests.fixtures.dashboard import ADMIN_TOKEN, sample_result
from tests.fixtures.events import run_fake_job
from tests.harness.processes import free_port, spawn, wait_healthy

#: Each test starts a server process: SQLite only here (the TestClient tests cover PostgreSQL).
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

GRID_SPEC = {"dataset": "digits", "dataset_update": "permute", "splits": 2, "epochs": 2}


@pytest.fixture
def server(session_factory, database_url, redis_url, tmp_path):
    """A real uvicorn process on the test database; yields (url, data folder)."""
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
        yield url, tmp_path / "data"
    finally:
        proc.stop()


@pytest.fixture
def admin(server, session_factory) -> int:
    from sqlalchemy import select

    from store.models import User

    with session_factory() as s:
        return s.scalar(select(User.id).where(User.name == "admin"))


@pytest.fixture
def ewc(server):
    with Client(server[0], ADMIN_TOKEN) as client:
        yield client


@pytest.fixture
def raw(server):
    with httpx.Client(base_url=server[0], headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as h:
        yield h


def test_models_give_back_the_json_the_server_sent(ewc, raw, admin, make_experiment):
    result = sample_result(3)
    exp = make_experiment(admin, result=result, timings={"total_s": 1.5, "extra_s": [2.0]},
                          name="shape")  # fmt: skip
    partial = make_experiment(admin, summary={"bwt": -0.1}, status=JobStatus.running)
    for experiment_id in (exp, partial):
        assert ewc.get(experiment_id).model_dump(mode="json") == raw.get(
            f"/v1/experiments/{experiment_id}"
        ).json()
        assert ewc.metrics(experiment_id).model_dump(mode="json") == raw.get(
            f"/v1/experiments/{experiment_id}/metrics"
        ).json()
    got = ewc.get(exp)
    assert got.summary.average_accuracy == result["summary"]["average_accuracy"]
    assert got.timings.total_s == 1.5 and got.timings.get("extra_s") == [2.0]
    assert ewc.get(partial).summary.model_dump() == {"bwt": -0.1}  # no keys invented
    assert ewc.export(exp).model_dump(mode="json") == raw.get(
        f"/v1/experiments/{exp}/export.json"
    ).json()
    assert ewc.export_csv(exp).startswith("experiment,")
    compared = ewc.compare([exp, partial])
    assert [row.id for row in compared.experiments] == [exp, partial]
    assert ewc.plot(exp, "curves").startswith(b"\x89PNG")


def test_runs_walks_every_page_and_filters(ewc, admin, make_experiment):
    ids = [make_experiment(admin, status=JobStatus.succeeded) for _ in range(5)]
    other = make_experiment(admin, status=JobStatus.failed)
    assert [e.id for e in ewc.runs(page_size=2)] == sorted([*ids, other], reverse=True)
    assert [e.id for e in ewc.runs(status="succeeded", page_size=2)] == sorted(ids, reverse=True)
    page = ewc.page(limit=2)
    assert len(page.items) == 2 and page.next_cursor is not None


def test_runs_rows_and_table_take_the_filter_and_the_sort_order(ewc, admin, make_experiment):
    ids = [make_experiment(admin, spec={"dataset": "digits", "ewc": {"lambda": 10.0 ** k}},
                           summary={"average_accuracy": 0.9 - k / 10, "bwt": -k / 100},
                           name=f"ewc-{k}")
           for k in range(4)]  # fmt: skip
    make_experiment(admin, spec={"dataset": "digits"}, status=JobStatus.queued)
    wanted = "params.ewc.lambda >= 10 and status = 'succeeded'"
    found = ewc.runs(filter=wanted, order_by="metrics.average_accuracy desc", page_size=2)
    assert [e.id for e in found] == ids[1:]
    rows = list(ewc.rows(filter=wanted, order_by="name desc", page_size=2))
    assert [r.id for r in rows] == ids[:0:-1]
    assert rows[0].model_dump()["params.ewc.lambda"] == 1000.0
    frame = ewc.table(filter=wanted, order_by="params.ewc.lambda", page_size=1)
    assert list(frame["id"]) == ids[1:] and list(frame["name"]) == ["ewc-1", "ewc-2", "ewc-3"]
    assert list(frame["params.ewc.lambda"]) == [10.0, 100.0, 1000.0]
    assert frame["metrics.bwt"].tolist() == [-0.01, -0.02, -0.03]
    assert str(frame["created_at"].dt.tz) == "UTC" and set(frame["status"]) == {"succeeded"}
    empty = ewc.table(filter="params.seed > 99")
    assert len(empty) == 0 and "metrics.average_accuracy" not in empty.columns
    with pytest.raises(ApiError) as bad:
        next(ewc.runs(filter="params.ewc.lamda > 1"))
    assert bad.value.status_code == 422 and bad.value.problems[0].field == "filter"
    assert "did you mean ewc.lambda?" in bad.value.problems[0].message


def test_table_without_pandas_names_the_extra(ewc, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # `import pandas` now raises ImportError
    with pytest.raises(ImportError, match=r"ewc-server\[pandas\]"):
        ewc.table()
    assert list(ewc.rows()) == []  # rows need no pandas


def test_sweeps_page_by_cursor_and_the_old_before_still_works(ewc, raw):
    made = [ewc.submit_sweep(GRID_SPEC, {"seed": [0]}, name=f"s{i}").id for i in range(3)]
    assert [s.id for s in ewc.sweeps(page_size=1)] == made[::-1]
    first = raw.get("/v1/sweeps", params={"limit": 1}).json()
    assert first["next_before"] == made[2]  # the deprecated field, still sent
    by_cursor = raw.get("/v1/sweeps", params={"limit": 1, "cursor": first["next_cursor"]}).json()
    by_before = raw.get("/v1/sweeps", params={"limit": 1, "before": first["next_before"]}).json()
    assert [s["id"] for s in by_cursor["items"]] == [s["id"] for s in by_before["items"]] == [made[1]]
    both = raw.get("/v1/sweeps", params={"cursor": first["next_cursor"], "before": 2})
    assert both.status_code == 422 and both.json()["detail"][0]["field"] == "before"
    bad = raw.get("/v1/sweeps", params={"cursor": "nonsense"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "cursor"
    doc = ewc.sweep(made[0])
    assert doc.model_dump(mode="json") == raw.get(f"/v1/sweeps/{made[0]}").json()
    assert doc.experiments[0].status == "queued" and doc.base_spec["dataset"] == "digits"


def test_cancel_and_wait_for_a_sweep(ewc):
    created = ewc.submit_sweep(GRID_SPEC, {"seed": [0, 1]})
    assert [ewc.cancel(i).status for i in created.experiment_ids] == [JobStatus.cancelled] * 2
    done = ewc.wait_sweep(created.id, poll_s=0.1)
    assert done.counts["cancelled"] == 2 and all(e.status == "cancelled" for e in done.experiments)
    assert ewc.queues().status["cancelled"] >= 2


def test_wait_follows_the_event_stream(ewc, admin, make_experiment, session_factory):
    exp = make_experiment(admin, status=JobStatus.queued, num_tasks=2, total_epochs=4)
    ready = threading.Event()
    writer = threading.Thread(target=run_fake_job, args=(session_factory, exp, ready))
    writer.start()
    seen = []

    def on_event(event):
        seen.append(event.event)
        ready.set()

    try:
        final = ewc.wait(exp, on_event=on_event)
    finally:
        ready.set()
        writer.join(10)
    assert final.status == JobStatus.succeeded
    assert seen[0] == "status" and seen[-1] == "end" and seen.count("epoch") == 4


def test_download_writes_the_artifact_whole(ewc, server, admin, make_experiment, tmp_path):
    from store.artifacts import experiment_dir

    exp = make_experiment(admin)
    folder = experiment_dir(server[1] / "artifacts", exp)
    folder.mkdir(parents=True)
    blob = bytes(range(256)) * 1000
    (folder / "model.keras").write_bytes(blob)
    assert [a.path for a in ewc.artifacts(exp).items] == ["model.keras"]
    written = ewc.download(exp, "model.keras", tmp_path)
    assert written == tmp_path / "model.keras" and written.read_bytes() == blob
    with pytest.raises(ApiError) as missing:
        ewc.download(exp, "task-9.zip", tmp_path / "x.zip")
    assert missing.value.status_code == 404 and not (tmp_path / "x.zip").exists()


def test_refusals_are_api_errors(ewc, server):
    with pytest.raises(ApiError) as invalid:
        ewc.submit({"dataset": "digits", "splits": 0})
    assert invalid.value.status_code == 422
    assert [p.field for p in invalid.value.problems] == ["splits"]
    with pytest.raises(ApiError) as cap:
        ewc.page(cursor="not-a-cursor")
    assert cap.value.problems[0].field == "cursor"
    with Client(server[0], "wrong-token") as stranger, pytest.raises(ApiError) as refused:
        stranger.get(1)
    assert refused.value.status_code == 401 and refused.value.problems == []
    with Client(f"http://127.0.0.1:{free_port()}", "t") as nobody, pytest.raises(Unreachable):
        nobody.queues()
