"""Managing runs after the fact over HTTP: re-run, edit, archive/restore, purge, cancel a
sweep, and projects (real app, real database on SQLite and PostgreSQL, real broker)."""

from __future__ import annotations

from sqlalchemy import func, select

from store.db import unit_of_work
from store.models import EpochMetric, Experiment, ExperimentTag, JobStatus, TaskResult
from tests.fixtures.dashboard import sample_result


def _set_status(session_factory, *pairs: tuple[int, JobStatus]) -> None:
    with unit_of_work(session_factory) as s:
        for exp_id, status in pairs:
            s.get(Experiment, exp_id).status = status


def _listed(client, headers, **params) -> list[int]:
    resp = client.get("/v1/experiments", params=params, headers=headers)
    assert resp.status_code == 200, resp.text
    return [e["id"] for e in resp.json()["items"]]


def test_rerun_repeats_the_spec_with_overrides_and_records_where_it_came_from(
    make_client, user_headers, spec
) -> None:
    client = make_client(max_active_jobs_per_user=4)
    ann, bob = user_headers("ann"), user_headers("bob")
    body = {**spec, "name": "base", "tags": ["a", "b"], "ewc": {"lambda": 1}, "priority": 3}
    first = client.post("/v1/experiments", json=body, params={"project": "p1"}, headers=ann).json()
    assert first["project"] == "p1" and first["rerun_of"] is None and first["archived_at"] is None

    resp = client.post(f"/v1/experiments/{first['id']}/rerun",
                       json={"overrides": {"ewc.lambda": 10, "seed": 7}}, headers=bob)  # fmt: skip
    assert resp.status_code == 201, resp.text
    again = resp.json()
    assert again["id"] != first["id"] and again["rerun_of"] == first["id"]
    assert (again["name"], again["tags"], again["project"]) == ("base (re-run)", ["a", "b"], "p1")
    assert again["owner"] == "bob" and again["status"] == "queued" and again["priority"] == 3
    assert again["spec"]["ewc"]["lambda"] == 10 and again["spec"]["seed"] == 7
    assert again["spec"]["dataset"] == "digits" and first["spec"]["ewc"]["lambda"] == 1

    plain = client.post(f"/v1/experiments/{again['id']}/rerun", headers=ann).json()
    assert plain["name"] == "base (re-run) (re-run)" and plain["spec"]["seed"] == 7
    named = client.post(
        f"/v1/experiments/{first['id']}/rerun",
        headers=ann,
        json={"overrides": {"name": "mine", "tags": []}, "project": "p2"},
    ).json()
    assert (named["name"], named["tags"], named["project"]) == ("mine", [], "p2")

    for overrides, field, words in [
        ({"ewc.lamda": 1}, "overrides.ewc.lamda", "did you mean ewc.lambda?"),
        ({"epochs": 0}, "overrides.epochs", "0"),
        ({"a..b": 1}, "overrides.a..b", "not a spec path"),
        ({"fim.threshold": "x"}, "overrides.fim.threshold", "'x'"),
    ]:
        resp = client.post(f"/v1/experiments/{first['id']}/rerun",
                           json={"overrides": overrides}, headers=ann)  # fmt: skip
        assert resp.status_code == 422, (overrides, resp.text)
        problem = resp.json()["detail"][0]
        assert problem["field"] == field and words in problem["message"], problem
    resp = client.post(f"/v1/experiments/{first['id']}/rerun", json={"set": {}}, headers=ann)
    assert resp.status_code == 422 and resp.json()["detail"][0]["field"] == "set"
    assert client.post("/v1/experiments/999999/rerun", headers=ann).status_code == 404

    client.post(f"/v1/experiments/{first['id']}/rerun", headers=ann)  # ann's 4th active job
    capped = client.post(f"/v1/experiments/{first['id']}/rerun", headers=ann)
    assert capped.status_code == 429 and "cap" in capped.json()["detail"]


def test_edit_changes_name_tags_notes_and_project_for_the_owner_or_an_admin(
    client, user_headers, admin, spec
) -> None:
    ann, bob = user_headers("ann"), user_headers("bob")
    exp = client.post("/v1/experiments", json={**spec, "name": "x", "tags": ["keep", "drop"]},
                      headers=ann).json()  # fmt: skip
    url = f"/v1/experiments/{exp['id']}"

    resp = client.patch(url, json={"tags": ["keep", "new"], "notes": "lr too high"}, headers=ann)
    assert resp.status_code == 200, resp.text
    doc = resp.json()
    assert (doc["name"], doc["tags"], doc["notes"]) == ("x", ["keep", "new"], "lr too high")
    doc = client.patch(url, json={"name": None, "project": "moved"}, headers=admin).json()
    assert doc["name"] is None and doc["project"] == "moved" and doc["notes"] == "lr too high"
    assert client.get(url, headers=bob).json()["tags"] == ["keep", "new"]

    resp = client.patch(url, json={"notes": "mine now"}, headers=bob)
    assert resp.status_code == 403 and "belongs to ann" in resp.json()["detail"]
    for body, field in [({"status": "succeeded"}, "status"), ({"name": "n" * 201}, "name"),
                        ({"tags": ["t" * 65]}, "tags.0"), ({"tags": [""]}, "tags.0"),
                        ({"tags": None}, "tags"), ({"project": None}, "project"),
                        ({"notes": "a\u0000b"}, "notes"), ({"tags": "a"}, "tags")]:  # fmt: skip
        resp = client.patch(url, json=body, headers=ann)
        assert resp.status_code == 422, (body, resp.text)
        assert resp.json()["detail"][0]["field"] == field, (body, resp.json())
    assert client.patch("/v1/experiments/999999", json={}, headers=ann).status_code == 404


def test_archive_hides_a_finished_run_from_listings_until_restored(
    client, user_headers, session_factory, spec
) -> None:
    ann, bob = user_headers("ann"), user_headers("bob")
    queued, running, done = (client.post("/v1/experiments", json={**spec, "tags": ["t"]},
                                         headers=ann).json()["id"] for _ in range(3))  # fmt: skip
    _set_status(session_factory, (running, JobStatus.running), (done, JobStatus.succeeded))

    for exp_id, status in ((queued, "queued"), (running, "running")):
        resp = client.delete(f"/v1/experiments/{exp_id}", headers=ann)
        assert resp.status_code == 409 and f"is {status}; cancel it first" in resp.json()["detail"]
    assert client.delete(f"/v1/experiments/{done}", headers=bob).status_code == 403

    resp = client.delete(f"/v1/experiments/{done}", headers=ann)
    assert resp.status_code == 200 and resp.json()["archived_at"]
    again = client.delete(f"/v1/experiments/{done}", headers=ann).json()  # unchanged
    assert again["archived_at"] == resp.json()["archived_at"]
    assert done not in _listed(client, ann) and done not in _listed(client, ann, tag="t")
    assert _listed(client, ann, archived="true") == [done, running, queued]
    assert _listed(client, ann, filter="status = 'succeeded'") == []
    table = client.get("/v1/experiments/table", headers=ann).json()
    assert [r["id"] for r in table] == [running, queued]
    shown = client.get("/v1/experiments/table", params={"archived": "true"}, headers=ann).json()
    assert [r["id"] for r in shown] == [done, running, queued]
    assert client.get(f"/v1/experiments/{done}", headers=bob).json()["archived_at"]

    assert client.post(f"/v1/experiments/{done}/restore", headers=bob).status_code == 403
    resp = client.post(f"/v1/experiments/{done}/restore", headers=ann)
    assert resp.status_code == 200 and resp.json()["archived_at"] is None
    assert _listed(client, ann) == [done, running, queued]
    assert client.delete("/v1/experiments/999999", headers=ann).status_code == 404


def test_purge_deletes_the_row_its_metrics_and_its_artifacts_admin_only(
    api, make_experiment, admin_id, app_settings, session_factory, user_headers
) -> None:
    done = make_experiment(admin_id, result=sample_result())
    running = make_experiment(admin_id, status=JobStatus.running)
    keep = make_experiment(admin_id, result=sample_result())
    with unit_of_work(session_factory) as s:
        s.add(ExperimentTag(experiment_id=done, tag="gone"))
    store = app_settings.artifact_store()
    for exp_id in (done, keep):
        store.put_bytes(f"experiments/{exp_id}/model.keras", b"model")
        store.put_bytes(f"experiments/{exp_id}/task-1/weights.h5", b"w")

    ann = user_headers("ann")
    resp = api.post(f"/v1/experiments/{done}/purge", headers=ann)
    assert resp.status_code == 403 and "archive it instead" in resp.json()["detail"]
    resp = api.post(f"/v1/experiments/{running}/purge")
    assert resp.status_code == 409 and "cancel it first" in resp.json()["detail"]

    resp = api.post(f"/v1/experiments/{done}/purge")
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"id": done, "artifacts_deleted": 2}
    assert api.get(f"/v1/experiments/{done}").status_code == 404
    assert store.list(f"experiments/{done}") == []
    assert len(store.list(f"experiments/{keep}")) == 2
    with session_factory() as s:
        for table in (EpochMetric, TaskResult, ExperimentTag):
            count = s.scalar(select(func.count()).select_from(table)
                             .where(table.experiment_id == done))  # fmt: skip
            assert count == 0, table
        assert s.scalar(select(func.count()).select_from(EpochMetric)
                        .where(EpochMetric.experiment_id == keep)) == 6  # fmt: skip
    assert api.post(f"/v1/experiments/{done}/purge").status_code == 404


def test_cancel_sweep_cancels_every_queued_or_running_point(
    client, user_headers, session_factory, spec
) -> None:
    ann, bob = user_headers("ann"), user_headers("bob")
    body = {"base": spec, "grid": {"seed": [0, 1, 2, 3]}, "name": "s"}
    created = client.post("/v1/sweeps", json=body, headers=ann).json()
    a, b, c, d = created["experiment_ids"]
    _set_status(session_factory, (b, JobStatus.running), (c, JobStatus.succeeded))

    resp = client.post(f"/v1/sweeps/{created['id']}/cancel", headers=bob)
    assert resp.status_code == 403 and "belongs to ann" in resp.json()["detail"]
    resp = client.post(f"/v1/sweeps/{created['id']}/cancel", headers=ann)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"sweep_id": created["id"], "cancelled": [a, d], "stopping": [b],
                           "finished": 1}  # fmt: skip
    states = {e: client.get(f"/v1/experiments/{e}", headers=ann).json() for e in (a, b, c, d)}
    assert [states[e]["status"] for e in (a, b, c, d)] == ["cancelled", "running", "succeeded",
                                                           "cancelled"]  # fmt: skip
    assert states[b]["cancel_requested"] is True
    again = client.post(f"/v1/sweeps/{created['id']}/cancel", headers=ann).json()
    assert again["cancelled"] == [] and again["stopping"] == [b] and again["finished"] == 3
    assert client.post("/v1/sweeps/999999/cancel", headers=ann).status_code == 404


def test_projects_default_to_the_owner_and_filter_the_listings(client, user_headers, spec) -> None:
    ann, bob = user_headers("ann"), user_headers("bob")
    own = client.post("/v1/experiments", json=spec, headers=ann).json()
    named = client.post("/v1/experiments", json=spec, params={"project": "vision"},
                        headers=ann).json()  # fmt: skip
    other = client.post("/v1/experiments", json=spec, params={"project": "vision"},
                        headers=bob).json()  # fmt: skip
    assert (own["project"], named["project"]) == ("ann", "vision")
    sweep = client.post("/v1/sweeps", json={"base": spec, "grid": {"seed": [0]}}, headers=bob)
    (point,) = sweep.json()["experiment_ids"]

    assert _listed(client, ann, project="vision") == [other["id"], named["id"]]
    assert _listed(client, ann, filter="project = 'vision'", owner="ann") == [named["id"]]
    assert _listed(client, ann, filter="project in ('ann', 'bob')") == [point, own["id"]]
    assert _listed(client, ann, filter="project like 'VIS%'") == [other["id"], named["id"]]
    assert _listed(client, ann, filter="project != 'vision'") == [point, own["id"]]
    ordered = _listed(client, ann, order_by="project desc")
    assert ordered == [other["id"], named["id"], point, own["id"]]
    rows = client.get("/v1/experiments/table", params={"project": "ann"}, headers=ann).json()
    assert [r["id"] for r in rows] == [own["id"]]

    resp = client.get("/v1/experiments", params={"filter": "project = 3"}, headers=ann)
    assert (
        resp.status_code == 422 and "project compares with" in resp.json()["detail"][0]["message"]
    )
    for bad in ("", "x" * 101):
        resp = client.post("/v1/experiments", json=spec, params={"project": bad}, headers=ann)
        assert resp.status_code == 422 and resp.json()["detail"][0]["field"] == "project"
