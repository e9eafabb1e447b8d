"""The server-rendered dashboard: login by token cookie, every page renders, the form
shows validation errors (never a 500) and submits."""

from __future__ import annotations

import re

from sqlalchemy import select

from store.db import unit_of_work
from store.models import Experiment, JobStatus
from tests.fixtures.dashboard import (
    ADMIN_TOKEN,
    log_in,
    new_form,
    png_size,
    sample_result,
    sweep_form,
)


def test_pages_need_a_login(api):
    del api.headers["Authorization"]
    r = api.get("/ui/experiments/1?x=1", follow_redirects=False)
    assert (
        r.status_code == 303 and r.headers["location"] == "/ui/login?next=/ui/experiments/1%3Fx%3D1"
    )
    r = log_in(api, "wrong")
    assert r.status_code == 401 and "unknown or revoked" in r.text
    api.cookies.set("ewc_token", ADMIN_TOKEN)  # the raw-token cookie of earlier versions
    assert api.get("/ui/", follow_redirects=False).status_code == 303, "is no login any more"
    assert api.get("/", follow_redirects=False).headers["location"] == "/ui/"


def test_list_detail_and_plots(ui, admin_id, make_experiment):
    done = make_experiment(
        admin_id,
        result=sample_result(3),
        name="three tasks",
        num_tasks=3,
        total_epochs=6,
        current_task=3,
        current_epoch=6,
    )
    queued = make_experiment(admin_id, status=JobStatus.queued, num_tasks=2, total_epochs=4)
    page = ui.get("/ui/")
    assert page.status_code == 200
    assert f'data-id="{done}" data-status="succeeded"' in page.text
    assert f'data-id="{queued}" data-status="queued"' in page.text
    assert "three tasks" in page.text and "88.0" in page.text
    assert ui.get("/ui/", params={"status": "queued"}).text.count("data-id=") == 1
    assert ui.get("/ui/", params={"cursor": "garbage"}).status_code == 200

    detail = ui.get(f"/ui/experiments/{done}")
    assert detail.status_code == 200
    assert f"/ui/experiments/{done}/plots/curves.png" in detail.text
    assert "92.0" in detail.text and "Validation accuracy" in detail.text
    assert 'id="live"' not in detail.text, "a finished job needs no live stream"
    assert (
        f'id="live" hidden data-experiment="{queued}"' in ui.get(f"/ui/experiments/{queued}").text
    )
    for kind, size in (("curves", (800, 450)), ("accuracy-matrix", (640, 520))):
        img = ui.get(f"/ui/experiments/{done}/plots/{kind}.png")
        assert img.status_code == 200 and png_size(img.content) == size
    assert ui.get(f"/ui/experiments/{queued}/plots/curves.png").status_code == 409
    assert ui.get("/ui/experiments/999").status_code == 404
    progress = ui.get("/ui/progress", params={"ids": f"{done},{queued},999"}).json()
    assert progress[str(queued)]["status"] == "queued" and str(999) not in progress
    assert ui.get(f"/ui/experiments/{done}/export.csv").text.startswith("experiment,row,")
    events = ui.get(f"/ui/experiments/{done}/events").text
    assert "event: end" in events


def test_compare_page(ui, admin_id, make_experiment):
    a = make_experiment(admin_id, result=sample_result(2), spec={"seed": 0, "dataset": "digits"})
    b = make_experiment(admin_id, result=sample_result(2), spec={"seed": 5, "dataset": "digits"})
    r = ui.get("/ui/compare", params={"ids": f"{a},{b}"})
    assert r.status_code == 200
    assert "<th>seed</th>" in r.text and f"/ui/experiments/{b}/plots/curves.png" in r.text
    assert ui.get("/ui/compare", params={"ids": "1,x"}).status_code == 422
    r = ui.get("/ui/compare", params={"ids": f"{a},777"})
    assert r.status_code == 404 and "experiment 777 does not exist" in r.text


def test_form_shows_errors_on_the_form(ui, session_factory):
    r = ui.post(
        "/ui/new",
        data=new_form(
            ui,
            model="lenet",
            dataset="digits",
            splits="abc",
            epochs="2",
            learning_rate="fast",
            name="x",
        ),
    )
    assert r.status_code == 422
    assert re.search(r'id="err-splits">&#39;abc&#39; is not a whole number', r.text)
    assert "is not a number" in r.text
    assert 'value="x"' in r.text, "what was typed is kept"
    r = ui.post(
        "/ui/new",
        data=new_form(
            ui,
            model="lenet",
            dataset="digits",
            dataset_update="permute",
            splits="2",
            epochs="2",
            ewc="on",
            ewc_lambda="-1",
        ),
    )
    assert r.status_code == 422
    assert 'id="err-ewc_lambda"' in r.text
    r = ui.post(
        "/ui/new",
        data=new_form(
            ui, model="lenet", dataset="digits", dataset_update="permute", splits="2", epochs="2"
        ),
    )
    assert r.status_code == 422 and 'id="err-model"' in r.text and "28x28" in r.text
    r = ui.post(
        "/ui/new",
        data=new_form(ui, dataset="digits", dataset_update="permute", splits="3", epochs="100000"),
    )
    assert r.status_code == 422 and 'id="err-epochs"' in r.text and "limit" in r.text
    with session_factory() as s:
        assert s.scalar(select(Experiment.id)) is None, "nothing was created"


def test_form_submits_and_redirects_to_the_list(ui, session_factory):
    r = ui.post(
        "/ui/new",
        data=new_form(
            ui,
            model="mlp",
            dataset="digits",
            dataset_update="permute",
            splits="2",
            epochs="2",
            batch_size="64",
            learning_rate="0.01",
            ewc="on",
            ewc_lambda="50",
            fisher="empirical",
            seed="3",
            name="from the form",
            tags="ui, demo",
            priority="0",
            device="any",
        ),
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    exp_id = int(r.headers["location"].split("=")[1])
    with session_factory() as s:
        exp = s.get(Experiment, exp_id)
        assert exp.spec["ewc"]["lambda"] == 50.0 and exp.spec["seed"] == 3
        assert exp.spec["batch_size"] == 64 and exp.tag_names == ["demo", "ui"]
        assert exp.wakeup_sent_at is not None
    page = ui.get(r.headers["location"])
    assert "Submitted experiment" in page.text and "from the form" in page.text


def test_sweep_pages(ui, session_factory):
    r = ui.post(
        "/ui/sweeps",
        data=sweep_form(
            ui,
            name="lam",
            base='{"dataset": "digits", "ewc": {}}',
            grid="ewc.lambda=1,10\nseed=0,1",
        ),
        follow_redirects=False,
    )
    assert r.status_code == 303
    page = ui.get(r.headers["location"])
    assert page.status_code == 200 and "Sweep 1: lam" in page.text
    assert "No run has finished yet" in page.text
    with unit_of_work(session_factory) as s:
        runs = s.scalars(select(Experiment).where(Experiment.sweep_id == 1).order_by(Experiment.id))
        for i, exp in enumerate(runs):  # λ=1: 50, 51 %; λ=10: 70, 71 %: far beyond the noise
            exp.status = JobStatus.succeeded
            avg = 0.5 + 0.2 * (i // 2) + 0.01 * (i % 2)
            exp.summary = {"average_accuracy": avg, "bwt": -0.1, "forgetting": 0.1}
    page = ui.get(r.headers["location"])
    assert 'src="/ui/sweeps/1/plot.png' in page.text and 'class="badge best"' in page.text
    assert "more than the noise" in page.text and "Welch" in page.text
    assert png_size(ui.get("/ui/sweeps/1/plot.png", params={"metric": "bwt"}).content) == (720, 450)
    assert "lam" in ui.get("/ui/sweeps").text
    bad = ui.post("/ui/sweeps", data=sweep_form(ui, base="{nope", grid="seed=0"))
    assert bad.status_code == 422 and "not a JSON object" in bad.text
    bad = ui.post("/ui/sweeps", data=sweep_form(ui, base="{}", grid="ewc.lambda=-1,2"))
    assert bad.status_code == 422 and "grid.ewc.lambda" in bad.text
    assert ui.get("/ui/sweeps/99").status_code == 404


def test_static_files(ui):
    assert ui.get("/ui/static/style.css").headers["content-type"].startswith("text/css")
    assert "followExperiment" in ui.get("/ui/static/dashboard.js").text
    assert ui.get("/ui/static/..%2Fapp.py").status_code == 404


def test_pages_hand_the_script_its_vocabulary(ui):
    # dashboard.js reads the finished statuses from <body data-vocabulary>, not a copy.
    import html
    import json

    from store.vocabulary import FINISHED_STATUSES, STATUSES

    for path in ("/ui/", "/ui/sweeps", "/ui/login"):
        page = ui.get(path).text
        found = re.search(r"<body data-vocabulary='([^']*)'>", page)
        assert found, path
        vocabulary = json.loads(html.unescape(found.group(1)))
        assert vocabulary == {"statuses": list(STATUSES), "finished_statuses": list(FINISHED_STATUSES)}
    script = ui.get("/ui/static/dashboard.js").text
    assert "dataset.vocabulary" in script
    assert not any(f"\"{s}\"" in script for s in ("failed", "cancelled")), "a copied status list"
