"""The API process imports no TensorFlow even after serving every route it has.

A real API process, started with the command `ewc up` uses (`python -m uvicorn
api.app:create_app --factory`), with one addition: a thread that, when the test writes a
line to its stdin, writes which heavy modules its `sys.modules` holds. Its database has a
finished experiment with every metric row, artifacts on disk, a sweep with finished runs.
The test then calls every route of the app over HTTP — the JSON API, plots (PNG), exports
(CSV, JSON), artifacts, event streams, sweeps, queues, health and metrics, the docs, and
every dashboard page and form — checks each answered as it should, asks for the report and
stops the process. A route the table below does not call fails the test, so a
new route is covered the day it is added.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from store.db import make_engine, make_session_factory, unit_of_work
from store.migrate import upgrade
from store.models import EpochMetric, Experiment, JobStatus, TaskResult, User, utcnow
from tests.e2e.conftest import free_port, wait_healthy
from tests.fixtures.dashboard import csrf_of, new_form, sample_result, sweep_form
from tests.fixtures.npz import blobs, npz_bytes

pytestmark = pytest.mark.e2e

ADMIN_TOKEN = "no-tensorflow-admin-token"
#: `python -m uvicorn ...` with a report of the heavy modules written at a clean exit.
LAUNCHER = """
import json, os, runpy, sys, threading
def report():  # a line on stdin: write what sys.modules holds now
    sys.stdin.readline()
    heavy = sorted({m.split(".")[0] for m in sys.modules
                    if m.split(".")[0] in ("tensorflow", "keras", "worker")}
                   | {m for m in sys.modules if m in ("continual_core.trainer", "continual_core.learner")})
    with open(os.environ["EWC_TEST_REPORT"] + ".tmp", "w") as f:
        json.dump({"heavy": heavy, "modules": len(sys.modules)}, f)
    os.replace(os.environ["EWC_TEST_REPORT"] + ".tmp", os.environ["EWC_TEST_REPORT"])
threading.Thread(target=report, daemon=True).start()
sys.argv = ["uvicorn", *sys.argv[1:]]
runpy.run_module("uvicorn", run_name="__main__", alter_sys=True)
"""


def app_routes() -> set[tuple[str, str]]:
    """(method, path template) of every route of the app (HEAD left out)."""
    from api.app import create_app

    def walk(routes, prefix: str = ""):
        for route in routes:
            if hasattr(route, "original_router"):  # FastAPI's included router
                yield from walk(route.original_router.routes, prefix + route.include_context.prefix)
            elif hasattr(route, "methods"):
                for method in route.methods - {"HEAD"}:
                    yield method, prefix + route.path

    return set(walk(create_app().router.routes))


def _seed(database_url: str, data_dir: Path) -> dict[str, int]:
    """A finished experiment with every metric row and artifacts, and a second one."""
    from store import artifacts

    engine = make_engine(database_url)
    try:
        with unit_of_work(make_session_factory(engine)) as s:
            ann = User(name="ann")
            s.add(ann)
            s.flush()
            ids = []
            for seed in (0, 1):
                result = sample_result(3)
                exp = Experiment(
                    owner_id=ann.id, spec={"dataset": "digits", "splits": 3, "seed": seed},
                    status=JobStatus.succeeded, summary=result["summary"], started_at=utcnow(),
                    finished_at=utcnow(), num_tasks=3, total_epochs=6, current_task=3,
                    current_epoch=6, name=f"seed {seed}",
                )  # fmt: skip
                s.add(exp)
                s.flush()
                for row in result["epochs"]:
                    s.add(EpochMetric(experiment_id=exp.id, task=row["task"], epoch=row["epoch"],
                                      task_epoch=row["task_epoch"], loss=row["loss"],
                                      val_accuracy=row["val_accuracy"], train_s=0.1, eval_s=0.01))  # fmt: skip
                for task, row in enumerate(result["accuracy_matrix"], start=1):
                    s.add(TaskResult(experiment_id=exp.id, task=task, test_accuracy=row))
                ids.append(exp.id)
    finally:
        engine.dispose()
    folder = artifacts.experiment_dir(data_dir / "artifacts", ids[0])
    (folder / "task-1").mkdir(parents=True)
    (folder / "model.keras").write_bytes(b"KERAS" * 10)
    (folder / "task-1" / "checkpoint.weights.h5").write_bytes(b"W" * 64)
    return {"done": ids[0], "other": ids[1]}


def _finish_sweep(database_url: str, sweep_id: int) -> None:
    """Mark a sweep's runs finished with summaries (no worker in this test)."""
    from sqlalchemy import select

    engine = make_engine(database_url)
    try:
        with unit_of_work(make_session_factory(engine)) as s:
            runs = s.scalars(select(Experiment).where(Experiment.sweep_id == sweep_id)).all()
            for i, exp in enumerate(runs):
                exp.status, exp.finished_at = JobStatus.succeeded, utcnow()
                exp.summary = {"average_accuracy": 0.5 + 0.1 * i, "bwt": -0.1, "forgetting": 0.1}
    finally:
        engine.dispose()


def _exercise(url: str, database_url: str, ids: dict[str, int]) -> set[tuple[str, str]]:
    """Call every route; returns the (method, template) pairs called."""
    called: set[tuple[str, str]] = set()
    done, other = ids["done"], ids["other"]
    bearer = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    def call(client, method, template, path=None, expect=(200,), **kwargs) -> httpx.Response:
        response = client.request(method, path or template, **kwargs)
        assert response.status_code in expect, (method, path or template, response.status_code,
                                                response.text[:500])  # fmt: skip
        called.add((method, template))
        return response

    png = b"\x89PNG"
    with httpx.Client(base_url=url, timeout=60, headers=bearer) as api:
        for path in ("/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"):
            call(api, "GET", path)
        call(api, "GET", "/", expect=(200, 303, 307))
        for path in ("/healthz", "/readyz", "/metrics"):
            call(api, "GET", path)
        e = "/v1/experiments/{experiment_id}"
        new = call(api, "POST", "/v1/experiments", json={"dataset": "digits", "epochs": 1},
                   expect=(201,)).json()["id"]  # fmt: skip
        assert call(api, "GET", "/v1/experiments").json()["items"]
        call(api, "GET", e, f"/v1/experiments/{done}")
        assert call(api, "GET", f"{e}/metrics", f"/v1/experiments/{done}/metrics").json()["accuracy_matrix"]
        call(api, "POST", f"{e}/cancel", f"/v1/experiments/{new}/cancel")
        call(api, "GET", "/v1/experiments/compare", params={"ids": f"{done},{other}"})
        assert call(api, "GET", "/v1/experiments/compare/plot.png",
                    params={"ids": f"{done},{other}", "kind": "average"}).content.startswith(png)  # fmt: skip
        found = call(api, "GET", "/v1/experiments", params={"filter": "params.ewc.lambda >= 0",
                                                             "order_by": "metrics.bwt desc"})
        assert call(api, "GET", "/v1/experiments/table", params={"format": "csv"}).text
        assert call(api, "GET", "/v1/experiments/table").json() and found.status_code == 200
        for kind in ("accuracy-matrix", "curves"):
            r = call(api, "GET", f"{e}/plots/{kind}.png", f"/v1/experiments/{done}/plots/{kind}.png")
            assert r.content.startswith(png)
        assert call(api, "GET", f"{e}/export.csv", f"/v1/experiments/{done}/export.csv").text
        json.loads(call(api, "GET", f"{e}/export.json", f"/v1/experiments/{done}/export.json").text)
        assert "event: end" in call(api, "GET", f"{e}/events", f"/v1/experiments/{done}/events").text
        for params in ({}, {"format": "text"}, {"follow": "true"}):
            call(api, "GET", f"{e}/logs", f"/v1/experiments/{done}/logs", params=params)
        items = call(api, "GET", f"{e}/artifacts", f"/v1/experiments/{done}/artifacts").json()["items"]
        assert {"model.keras"} <= {a["path"] for a in items}, items
        r = call(api, "GET", f"{e}/artifacts/{{path:path}}", f"/v1/experiments/{done}/artifacts/model.keras")
        assert r.content == b"KERAS" * 10
        call(api, "GET", f"{e}/artifacts/{{path:path}}", f"/v1/experiments/{done}/artifacts/task-1.zip")
        sweep = call(api, "POST", "/v1/sweeps", expect=(201,),
                     json={"name": "lam", "base": {"dataset": "digits", "ewc": {}},
                           "grid": {"ewc.lambda": [1, 10]}}).json()["id"]  # fmt: skip
        _finish_sweep(database_url, sweep)
        call(api, "GET", "/v1/sweeps")
        call(api, "GET", "/v1/sweeps/{sweep_id}", f"/v1/sweeps/{sweep}")
        r = call(api, "GET", "/v1/sweeps/{sweep_id}/plot.png", f"/v1/sweeps/{sweep}/plot.png")
        assert r.content.startswith(png)
        call(api, "GET", "/v1/queues")
        # Managing runs: edit, re-run, archive and restore, purge the re-run, cancel a sweep.
        call(api, "PATCH", e, f"/v1/experiments/{done}", json={"notes": "seen", "tags": ["x"]})
        rerun = call(api, "POST", f"{e}/rerun", f"/v1/experiments/{done}/rerun", expect=(201,),
                     json={"overrides": {"epochs": 1}}).json()["id"]  # fmt: skip
        call(api, "POST", f"{e}/cancel", f"/v1/experiments/{rerun}/cancel")
        call(api, "DELETE", e, f"/v1/experiments/{other}")
        call(api, "POST", f"{e}/restore", f"/v1/experiments/{other}/restore")
        call(api, "POST", f"{e}/purge", f"/v1/experiments/{rerun}/purge", expect=(200, 204))
        live = call(api, "POST", "/v1/sweeps", expect=(201,),
                    json={"base": {"dataset": "digits"}, "grid": {"seed": [0, 1]}}).json()["id"]  # fmt: skip
        call(api, "POST", "/v1/sweeps/{sweep_id}/cancel", f"/v1/sweeps/{live}/cancel")
        # Webhooks: add, list, read, ping, the delivery logs, remove.
        w = "/v1/webhooks/{webhook_id}"
        hook = call(api, "POST", "/v1/webhooks", expect=(201,),
                    json={"url": "http://127.0.0.1:9/hook"}).json()["id"]  # fmt: skip
        call(api, "GET", "/v1/webhooks")
        call(api, "GET", w, f"/v1/webhooks/{hook}")
        call(api, "POST", f"{w}/test", f"/v1/webhooks/{hook}/test", expect=(202,))
        call(api, "GET", "/v1/webhooks/deliveries")
        call(api, "GET", f"{w}/deliveries", f"/v1/webhooks/{hook}/deliveries")
        npz = npz_bytes(**blobs(shape=(4, 4), classes=2, train=10, test=4))
        call(api, "POST", "/v1/datasets", expect=(201,), data={"name": "mine"},
             files={"file": ("mine.npz", npz)})  # fmt: skip
        call(api, "GET", "/v1/datasets")
        call(api, "GET", "/v1/datasets/{name}", "/v1/datasets/mine")
        call(api, "DELETE", "/v1/datasets/{name}", "/v1/datasets/mine", expect=(204,))
        call(api, "DELETE", w, f"/v1/webhooks/{hook}", expect=(204,))

    with httpx.Client(base_url=url, timeout=60) as ui:
        call(ui, "GET", "/ui/login")
        r = call(ui, "POST", "/ui/login", expect=(303,), data={
            "token": ADMIN_TOKEN, "next": "/ui/", "csrf_token": csrf_of(ui, "/ui/login")})  # fmt: skip
        assert r.headers["location"] == "/ui/", r.headers
        ui.cookies.set("ewc_session", r.cookies["ewc_session"])  # set by hand: the jar of a client on an IP host may not send it
        call(ui, "GET", "/ui/")
        call(ui, "GET", "/ui/progress", params={"ids": f"{done},{other}"})
        x = "/ui/experiments/{experiment_id}"
        call(ui, "GET", x, f"/ui/experiments/{done}")
        for kind in ("curves", "accuracy-matrix"):
            r = call(ui, "GET", f"{x}/plots/{{kind}}.png", f"/ui/experiments/{done}/plots/{kind}.png")
            assert r.content.startswith(png)
        assert "event: end" in call(ui, "GET", f"{x}/events", f"/ui/experiments/{done}/events").text
        assert "event: end" in call(ui, "GET", f"{x}/logs", f"/ui/experiments/{done}/logs",
                                    params={"follow": "true"}).text  # fmt: skip
        for fmt in ("csv", "json"):
            call(ui, "GET", f"{x}/export.{{fmt}}", f"/ui/experiments/{done}/export.{fmt}")
        r = call(ui, "GET", f"{x}/artifacts/{{path:path}}", f"/ui/experiments/{done}/artifacts/model.keras")
        assert r.content == b"KERAS" * 10
        call(ui, "GET", "/ui/compare", params={"ids": f"{done},{other}"})
        assert call(ui, "GET", "/ui/compare/plot.png",
                    params={"ids": f"{done},{other}", "kind": "diff"}).content.startswith(png)  # fmt: skip
        call(ui, "GET", "/ui/sweeps")
        call(ui, "GET", "/ui/sweeps/{sweep_id}", f"/ui/sweeps/{sweep}")
        r = call(ui, "GET", "/ui/sweeps/{sweep_id}/plot.png", f"/ui/sweeps/{sweep}/plot.png")
        assert r.content.startswith(png)
        call(ui, "GET", "/ui/datasets")
        call(ui, "POST", "/ui/datasets", expect=(303,), files={"file": ("d.npz", npz)},
             data={"name": "d", "csrf_token": csrf_of(ui, "/ui/datasets")})  # fmt: skip
        call(ui, "POST", "/ui/datasets/{name}/delete", "/ui/datasets/d/delete", expect=(303,),
             data={"csrf_token": csrf_of(ui, "/ui/datasets")})  # fmt: skip
        call(ui, "GET", "/ui/webhooks")
        page = f"/ui/experiments/{done}"
        call(ui, "POST", f"{x}/edit", f"{page}/edit", expect=(303,), data={
            "csrf_token": csrf_of(ui, page), "name": "seed 0", "tags": "x", "notes": "", "project": "ann"})  # fmt: skip
        call(ui, "POST", f"{x}/archive", f"/ui/experiments/{other}/archive", expect=(303,),
             data={"csrf_token": csrf_of(ui, page)})  # fmt: skip
        call(ui, "POST", f"{x}/restore", f"/ui/experiments/{other}/restore", expect=(303,),
             data={"csrf_token": csrf_of(ui, page)})  # fmt: skip
        r = call(ui, "POST", f"{x}/rerun", f"{page}/rerun", expect=(303,),
                 data={"csrf_token": csrf_of(ui, page)})  # fmt: skip
        call(ui, "POST", "/ui/sweeps/{sweep_id}/cancel", f"/ui/sweeps/{live}/cancel", expect=(303,),
             data={"csrf_token": csrf_of(ui, f"/ui/sweeps/{live}")})  # fmt: skip
        call(ui, "GET", "/ui/new")
        call(ui, "POST", "/ui/new", expect=(303,), data=new_form(ui, dataset="digits", splits="2", epochs="2"))
        queued = call(api_client := httpx.Client(base_url=url, headers=bearer), "POST",
                      "/v1/experiments", json={"dataset": "digits", "epochs": 1},
                      expect=(201,)).json()["id"]  # fmt: skip
        api_client.close()
        call(ui, "POST", f"{x}/cancel", f"/ui/experiments/{queued}/cancel", expect=(200, 303),
             data={"csrf_token": csrf_of(ui, f"/ui/experiments/{queued}")})  # fmt: skip
        call(ui, "POST", "/ui/sweeps", expect=(303,),
             data=sweep_form(ui, name="s", base='{"dataset": "digits"}', grid="seed=0,1"))  # fmt: skip
        assert call(ui, "GET", "/ui/static/{name}", "/ui/static/style.css").text
        call(ui, "POST", "/ui/logout", expect=(200, 303),
             data={"csrf_token": csrf_of(ui, "/ui/new")})  # fmt: skip
    return called


def test_the_api_process_has_no_tensorflow_after_serving_every_route(tmp_path, redis_url):
    from cli.local_service import api_command
    from common.settings import Settings

    data_dir = tmp_path / "data"
    data_dir.mkdir()
    database_url = f"sqlite:///{tmp_path / 'ewc.db'}"
    upgrade(database_url)
    ids = _seed(database_url, data_dir)
    report = tmp_path / "modules.json"
    port = free_port()
    command = api_command(Settings(host="127.0.0.1", port=port))
    assert command[1:3] == ["-m", "uvicorn"], command
    env = {
        **os.environ,
        "EWC_DATA_DIR": str(data_dir),
        "EWC_DATABASE_URL": database_url,
        "EWC_BROKER_URL": redis_url,
        "EWC_ADMIN_TOKEN": ADMIN_TOKEN,
        "EWC_TEST_REPORT": str(report),
        "PYTHONUNBUFFERED": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, *command[3:]], env=env, cwd=tmp_path,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip

    class _Proc:  # what wait_healthy needs
        name, popen = "api", proc
        output = ""

    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, _Proc, timeout=90)
        called = _exercise(url, database_url, ids)
        proc.stdin.write("report\n")
        proc.stdin.flush()
        deadline = time.monotonic() + 30
        while not report.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "no report"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            output, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()
    assert "Traceback" not in output, output[-3000:]
    missing = sorted(app_routes() - called)
    assert not missing, f"routes this test does not call yet (add them to _exercise): {missing}"
    found = json.loads(report.read_text())
    print(f"{len(called)} routes called; {found['modules']} modules loaded; heavy: {found['heavy']}")
    assert found["heavy"] == [], found["heavy"]
