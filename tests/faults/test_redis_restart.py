"""Fault (b): Redis restarts empty (no persistence) while jobs are queued.

Real processes: an API (uvicorn), an `ewc worker`, PostgreSQL and a private redis-server
started with `--save "" --appendonly no`. Six jobs are submitted (their wake-ups wait in
Redis, no worker is up yet), Redis is SIGKILLed, two more are submitted while it is down,
and it is started again on the same port — empty. Then a worker starts: with no message
in the broker, only the worker's periodic re-sending of wake-ups (for jobs that waited too
long) can get the jobs going. Every job must succeed exactly once. Then Redis is
killed and restarted once more under the idle, connected worker: it must reconnect and run
jobs submitted afterwards.
"""

from __future__ import annotations

import time

import httpx
import pytest
import redis
import sqlalchemy as sa

from store.migrate import upgrade
from tests.harness.experiments import TINY, token_for, wait_for_status
from tests.harness.processes import claimed_ids, service_env, start_api, start_workers

pytestmark = [pytest.mark.faults, pytest.mark.slow]

SPEC = TINY


def test_jobs_queued_when_redis_restarts_empty_all_complete_once(
    tmp_path, pg_database, private_redis, processes, say
):
    upgrade(pg_database)
    env = service_env(pg_database, private_redis.url, tmp_path / "data", fast_recovery=True)
    api, url = start_api(processes, env)
    broker = redis.Redis(port=private_redis.port, socket_timeout=2)
    headers = {"Authorization": f"Bearer {token_for(pg_database)}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        ids = [client.post("/v1/experiments", json={**SPEC, "seed": i}).json()["id"] for i in range(6)]
        waiting = broker.llen("cpu")
        assert waiting == 6, f"expected 6 wake-ups waiting in Redis, found {waiting}"

        private_redis.kill()
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["broker"].startswith("error")
        assert client.get("/healthz").status_code == 200
        while_down = [client.post("/v1/experiments", json={**SPEC, "seed": 6 + i}) for i in range(2)]
        assert [r.status_code for r in while_down] == [201, 201], [r.text for r in while_down]
        ids += [r.json()["id"] for r in while_down]
        private_redis.start()
        assert private_redis.keys() == 0 and broker.llen("cpu") == 0
        say(
            f"submitted 6 jobs ({waiting} wake-ups in Redis), SIGKILLed Redis: /readyz 503 "
            f"(broker), 2 more submissions accepted (201) while it was down; restarted it "
            f"on port {private_redis.port}: {private_redis.keys()} keys left"
        )

        restarted_at = time.monotonic()
        (worker,) = start_workers(processes, env)
        finished = [wait_for_status(client, i, {"succeeded", "failed", "cancelled"}) for i in ids]
        elapsed = time.monotonic() - restarted_at
        assert client.get("/readyz").status_code == 200

        # Again, under a connected idle worker: it must reconnect to the new server.
        private_redis.kill()
        time.sleep(2)
        private_redis.start()
        after = [client.post("/v1/experiments", json={**SPEC, "seed": 8 + i}) for i in range(2)]
        assert [r.status_code for r in after] == [201, 201], [r.text for r in after]
        again = [wait_for_status(client, r.json()["id"], {"succeeded", "failed"}) for r in after]
        assert [j["status"] for j in again] == ["succeeded"] * 2, again
        ids += [r.json()["id"] for r in after]
        finished += again

    assert [j["status"] for j in finished] == ["succeeded"] * 10, finished
    assert [j["attempts"] for j in finished] == [1] * 10
    claimed = claimed_ids(worker)
    assert sorted(claimed) == sorted(ids), claimed  # each job claimed once, none twice
    resent = sum("event=wakeup_resent" in line for line in worker.lines)
    assert resent >= 1, worker.output
    engine = sa.create_engine(pg_database)
    with engine.connect() as conn:
        rows = dict(
            conn.execute(
                sa.text("SELECT experiment_id, count(*) FROM epoch_metrics GROUP BY experiment_id")
            ).all()
        )
    engine.dispose()
    assert rows == {i: 2 for i in ids}
    assert api.popen.poll() is None and worker.popen.poll() is None
    say(
        f"worker started after the restart: it re-sent {resent} lost wake-up(s); all 8 jobs "
        f"succeeded in {elapsed:.1f} s; Redis killed and restarted again under the idle "
        f"worker: it reconnected and ran 2 new jobs; all 10 claimed once (attempts 1), "
        "2 epoch rows each; API and worker still up"
    )
