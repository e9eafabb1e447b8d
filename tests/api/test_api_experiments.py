"""Submitting, reading, listing and cancelling experiments over HTTP."""

from __future__ import annotations

from store.db import unit_of_work
from store.models import EpochMetric, Experiment, JobStatus, TaskResult


def test_submit_then_get(client, user_headers, spec) -> None:
    ann = user_headers("ann")
    body = {**spec, "name": "first", "tags": ["demo", "x"], "priority": 5, "device": "gpu"}
    resp = client.post("/v1/experiments", json=body, headers=ann)
    assert resp.status_code == 201, resp.text
    created = resp.json()
    assert created["status"] == "queued" and created["owner"] == "ann"
    assert (created["queue"], created["priority"], created["name"]) == ("gpu", 5, "first")
    assert created["tags"] == ["demo", "x"]
    assert created["progress"] == {"task": 0, "num_tasks": 2, "epoch": 0, "total_epochs": 2}
    assert created["spec"]["model"] == "mlp" and created["spec"]["learning_rate"] == 0.001

    got = client.get(f"/v1/experiments/{created['id']}", headers=ann)
    assert got.status_code == 200
    doc = got.json()
    for key in ("id", "name", "tags", "owner", "status", "spec", "queue", "priority", "progress",
                "summary", "error", "timings", "device", "worker", "attempts",
                "cancel_requested", "created_at", "started_at", "finished_at"):
        assert key in doc, key
    assert doc["created_at"].endswith(("Z", "+00:00"))


def test_unknown_experiment_is_404(client, admin) -> None:
    for path in ("/v1/experiments/12345", "/v1/experiments/12345/metrics"):
        resp = client.get(path, headers=admin)
        assert resp.status_code == 404 and "12345" in resp.json()["detail"]
    assert client.post("/v1/experiments/12345/cancel", headers=admin).status_code == 404
    assert client.get("/v1/experiments/abc", headers=admin).status_code == 422


def test_list_filters_and_cursor_pagination(client, user_headers, admin, spec) -> None:
    ann, bob = user_headers("ann"), user_headers("bob")
    ids = []
    for i in range(7):
        body = {**spec, "tags": ["even"] if i % 2 == 0 else ["odd"]}
        ids.append(client.post("/v1/experiments", json=body, headers=ann if i < 4 else bob)
                   .json()["id"])
    client.post(f"/v1/experiments/{ids[0]}/cancel", headers=ann)

    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/experiments", params=params, headers=admin).json()
        seen += [e["id"] for e in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(ids, reverse=True) and pages == 3

    def listed(**params):
        return [e["id"] for e in client.get("/v1/experiments", params=params, headers=ann)
                .json()["items"]]

    assert listed(status="cancelled") == [ids[0]]
    assert listed(status="queued", tag="even") == [ids[6], ids[4], ids[2]]
    assert listed(owner="bob") == [ids[6], ids[5], ids[4]]
    assert listed(owner="bob", tag="odd") == [ids[5]]
    assert listed(owner="nobody") == []


def test_bad_list_parameters_are_422(client, admin) -> None:
    for params, field in [({"status": "done"}, "status"), ({"cursor": "garbage"}, "cursor"),
                          ({"limit": 0}, "limit"), ({"limit": 1000}, "limit")]:
        resp = client.get("/v1/experiments", params=params, headers=admin)
        assert resp.status_code == 422, params
        assert resp.json()["detail"][0]["field"] == field
    resp = client.get("/v1/experiments", params={"status": "done"}, headers=admin)
    assert "'done' is not allowed" in resp.json()["detail"][0]["message"]


def test_cancel_queued_at_once_running_on_request_finished_409(
    client, user_headers, session_factory, spec
) -> None:
    ann = user_headers("ann")
    queued, running, done = (client.post("/v1/experiments", json=spec, headers=ann).json()["id"]
                             for _ in range(3))
    with unit_of_work(session_factory) as s:
        s.get(Experiment, running).status = JobStatus.running
        s.get(Experiment, done).status = JobStatus.succeeded

    resp = client.post(f"/v1/experiments/{queued}/cancel", headers=ann)
    assert resp.status_code == 200
    assert resp.json()["status"] == "cancelled" and resp.json()["finished_at"]

    resp = client.post(f"/v1/experiments/{running}/cancel", headers=ann)
    assert resp.status_code == 200
    assert resp.json()["status"] == "running" and resp.json()["cancel_requested"] is True

    for exp_id in (done, queued):
        resp = client.post(f"/v1/experiments/{exp_id}/cancel", headers=ann)
        assert resp.status_code == 409 and "already" in resp.json()["detail"]


def test_metrics_document(client, user_headers, session_factory, spec) -> None:
    ann = user_headers("ann")
    exp_id = client.post("/v1/experiments", json=spec, headers=ann).json()["id"]
    empty = client.get(f"/v1/experiments/{exp_id}/metrics", headers=ann).json()
    assert empty["epochs"] == [] and empty["accuracy_matrix"] == [] and empty["summary"] is None

    with unit_of_work(session_factory) as s:
        rows = {1: [0.95, 0.1], 2: [0.9, 0.6]}
        for task in (1, 2):
            s.add(EpochMetric(experiment_id=exp_id, task=task, epoch=task, task_epoch=1,
                              loss=1.0 / task, val_accuracy=[0.9, 0.1 * task], train_s=1.0,
                              eval_s=0.1))
            s.add(TaskResult(experiment_id=exp_id, task=task, test_accuracy=rows[task]))
        e = s.get(Experiment, exp_id)
        e.status, e.current_task, e.current_epoch = JobStatus.succeeded, 2, 2
        e.summary = {"average_accuracy": 0.75, "bwt": -0.05, "forgetting": 0.05}
        e.versions = {"tensorflow": "2.21.0"}

    doc = client.get(f"/v1/experiments/{exp_id}/metrics", headers=ann).json()
    assert [(r["task"], r["epoch"]) for r in doc["epochs"]] == [(1, 1), (2, 2)]
    assert doc["epochs"][1]["val_accuracy"] == [0.9, 0.2]
    assert doc["accuracy_matrix"] == [[0.95, 0.1], [0.9, 0.6]]
    assert doc["summary"]["bwt"] == -0.05 and doc["fisher"] == "empirical"
    assert doc["timings"]["train_epoch_s"] == [1.0, 1.0]
    assert doc["spec"]["splits"] == 2 and doc["versions"]["tensorflow"] == "2.21.0"
    got = client.get(f"/v1/experiments/{exp_id}", headers=ann).json()
    assert got["progress"] == {"task": 2, "num_tasks": 2, "epoch": 2, "total_epochs": 2}


def test_queues_endpoint(client, user_headers, spec) -> None:
    ann = user_headers("ann")
    client.post("/v1/experiments", json={**spec, "device": "gpu"}, headers=ann)
    client.post("/v1/experiments", json=spec, headers=ann)
    body = client.get("/v1/queues", headers=ann).json()
    assert body["queues"]["gpu"] == {"waiting": 1, "running": 0, "workers": []}
    assert body["queues"]["cpu"] == {"waiting": 1, "running": 0, "workers": []}
    assert body["status"]["queued"] == 2
