"""Plots, comparison and export over HTTP, against the real app and database."""

from __future__ import annotations

import csv
import io

from store.models import JobStatus
from tests.fixtures.dashboard import png_size, sample_result


def test_plots_render_and_are_cached(api, admin_id, make_experiment):
    exp = make_experiment(admin_id, result=sample_result(3))
    r = api.get(f"/v1/experiments/{exp}/plots/accuracy-matrix.png")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert png_size(r.content) == (640, 520)
    r = api.get(f"/v1/experiments/{exp}/plots/curves.png")
    assert r.status_code == 200 and png_size(r.content) == (800, 450)
    cache = api.app.state.plot_cache
    misses = cache.misses
    assert api.get(f"/v1/experiments/{exp}/plots/curves.png").content == r.content
    assert cache.misses == misses and cache.hits >= 1


def test_plot_errors(api, admin_id, make_experiment):
    queued = make_experiment(admin_id, status=JobStatus.queued)
    r = api.get(f"/v1/experiments/{queued}/plots/curves.png")
    assert r.status_code == 409 and "no epoch has finished yet" in r.json()["detail"]
    assert api.get("/v1/experiments/999/plots/curves.png").status_code == 404
    r = api.get(f"/v1/experiments/{queued}/plots/curves.png", headers={"Authorization": ""})
    assert r.status_code == 401


def test_compare(api, admin_id, make_experiment):
    a = make_experiment(admin_id, spec={"dataset": "digits", "seed": 0, "ewc": None, "name": "a"},
                        summary={"average_accuracy": 0.8, "bwt": -0.1, "forgetting": 0.1})
    b = make_experiment(admin_id, spec={"dataset": "digits", "seed": 1, "ewc": {"lambda": 10.0},
                                        "name": "b"})
    r = api.get("/v1/experiments/compare", params={"ids": f"{a}, {b},{a}"})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert [e["id"] for e in doc["experiments"]] == [a, b]
    assert doc["experiments"][0]["summary"]["average_accuracy"] == 0.8
    diff = doc["spec_differences"]
    assert diff["seed"] == {str(a): 0, str(b): 1}
    assert diff["ewc.lambda"] == {str(a): None, str(b): 10.0}
    assert "name" not in diff and "dataset" not in diff
    assert doc["common_spec"]["dataset"] == "digits"


def test_compare_errors(api, admin_id, make_experiment):
    a = make_experiment(admin_id)
    for bad in ("", "1,x", "0", "-1", ",".join(str(i) for i in range(1, 30))):
        r = api.get("/v1/experiments/compare", params={"ids": bad})
        assert r.status_code == 422, (bad, r.text)
        assert r.json()["detail"][0]["field"] == "ids"
    r = api.get("/v1/experiments/compare", params={"ids": f"{a},998,999"})
    assert r.status_code == 404
    assert r.json()["detail"] == "experiments 998, 999 do not exist"


def test_export_csv(api, admin_id, make_experiment):
    exp = make_experiment(admin_id, result=sample_result(3, 2))
    r = api.get(f"/v1/experiments/{exp}/export.csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert f"experiment-{exp}.csv" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["row"] for row in rows] == ["epoch"] * 6 + ["test"] * 3
    assert list(rows[0])[-5:] == ["acc_task_1", "acc_task_2", "acc_task_3", "train_s", "eval_s"]
    first = rows[0]
    assert (first["task"], first["epoch"], float(first["acc_task_1"])) == ("1", "1", 0.9)
    last = rows[-1]
    assert (last["task"], float(last["acc_task_1"]), float(last["acc_task_3"])) == ("3", 0.84, 0.92)


def test_export_json(api, admin_id, make_experiment):
    exp = make_experiment(admin_id, result=sample_result(2, 1))
    r = api.get(f"/v1/experiments/{exp}/export.json")
    assert r.status_code == 200
    doc = r.json()
    assert doc["experiment"]["id"] == exp and doc["experiment"]["status"] == "succeeded"
    assert len(doc["metrics"]["epochs"]) == 2
    assert doc["metrics"]["accuracy_matrix"] == sample_result(2, 1)["accuracy_matrix"]
    assert api.get("/v1/experiments/999/export.json").status_code == 404
