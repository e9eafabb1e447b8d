"""Liveness, readiness (database and broker), Prometheus metrics, OpenAPI; a database
that is down gives 503s, not 500s or a crashed process."""

from __future__ import annotations

import socket

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from common.settings import Settings
from store.db import unit_of_work
from store.experiments import get_experiment


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


def test_healthz_and_readyz_when_all_is_up(client) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "checks": {}}
    resp = client.get("/readyz")
    assert resp.status_code == 200
    assert resp.json()["checks"] == {"database": "ok", "broker": "ok"}


def test_dead_database_gives_503_and_the_process_stays_up(redis_url, tmp_path) -> None:
    dead = f"postgresql+psycopg://postgres@127.0.0.1:{_closed_port()}/ewc"
    settings = Settings(_env_file=None, data_dir=tmp_path, database_url=dead,
                        broker_url=redis_url, admin_token="t" * 24)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503
        checks = ready.json()["checks"]
        assert checks["broker"] == "ok" and checks["database"].startswith("error:")
        resp = client.get("/v1/experiments", headers={"Authorization": "Bearer " + "t" * 24})
        assert resp.status_code == 503
        assert "database is unavailable" in resp.json()["detail"]
        assert "Traceback" not in resp.text
        assert client.get("/metrics").status_code == 200  # reports ewc_database_up 0
        assert "ewc_database_up 0.0" in client.get("/metrics").text
        assert client.get("/healthz").status_code == 200  # still alive


def test_dead_broker_fails_readiness_but_submissions_are_kept(make_client, admin, spec) -> None:
    client = make_client(broker_url=f"redis://127.0.0.1:{_closed_port()}/0")
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["database"] == "ok"
    assert ready.json()["checks"]["broker"].startswith("error:")
    # the row is the truth: the job is queued, a re-sent wake-up will wake a worker later
    resp = client.post("/v1/experiments", json=spec, headers=admin)
    assert resp.status_code == 201 and resp.json()["status"] == "queued"
    # ... and it is marked as never woken, so the next re-send pass sends its wake-up
    with unit_of_work(client.app.state.session_factory) as session:
        assert get_experiment(session, resp.json()["id"]).wakeup_sent_at is None


def test_unmigrated_database_is_503_with_a_hint(redis_url, tmp_path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path,
                        database_url=f"sqlite:///{tmp_path / 'empty.db'}", broker_url=redis_url)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        resp = client.get("/v1/experiments", headers={"Authorization": "Bearer x"})
        assert resp.status_code == 503 and "ewc migrate" in resp.json()["detail"]


def test_prometheus_metrics(client, admin, spec) -> None:
    client.post("/v1/experiments", json={**spec, "device": "gpu"}, headers=admin)
    client.post("/v1/experiments", json=spec, headers=admin)
    client.get("/v1/experiments/1", headers=admin)
    resp = client.get("/metrics")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
    text = resp.text
    assert 'ewc_jobs{status="queued"} 2.0' in text
    assert 'ewc_jobs{status="running"} 0.0' in text
    assert 'ewc_queue_jobs{queue="gpu",state="waiting"} 1.0' in text
    assert 'ewc_queue_jobs{queue="cpu",state="waiting"} 1.0' in text
    assert 'ewc_http_requests_total{method="POST",route="/v1/experiments",status="201"} 2.0' in text
    assert 'route="/v1/experiments/{experiment_id}"' in text  # templates, not raw ids
    assert "ewc_http_request_duration_seconds_bucket" in text


@pytest.mark.parametrize("path", ["/openapi.json"])
def test_openapi_describes_the_v1_contract(client, path) -> None:
    schema = client.get(path).json()
    for route in ("/v1/experiments", "/v1/experiments/{experiment_id}",
                  "/v1/experiments/{experiment_id}/metrics",
                  "/v1/experiments/{experiment_id}/cancel", "/healthz", "/readyz"):
        assert route in schema["paths"], route
    post = schema["paths"]["/v1/experiments"]["post"]
    assert {"201", "413", "422", "429"} <= set(post["responses"])
    assert "ExperimentSpec" in str(post["requestBody"])
