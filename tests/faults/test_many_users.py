"""Fault (d): 200 tiny jobs from 4 users over HTTP, one user's backlog first.

Real processes: an API (uvicorn), two `ewc worker`s, a redis-server and PostgreSQL or a
SQLite file. Ann submits her 50 jobs first — all committed — and only then do Bob, Cy and
Dee submit 50 each at the same time (one thread each). Plain FIFO would now run Ann's 50
before anyone else's; fair share must not: one worker starts, and the first 20 jobs it
starts hold exactly 5 of each user's (the README's claim), the others' first jobs among
the first four. Then a second worker joins, and every job must complete exactly once — one
attempt, one claim in the workers' logs, exactly its one epoch row and one task row — with
the users' jobs interleaved to the end. Meanwhile `GET /v1/queues` shows both workers
alive with their device, and afterwards `/metrics` counts the 200 jobs and epochs.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import httpx
import pytest
import sqlalchemy as sa

from store.migrate import upgrade
from tests.harness.experiments import SMALLEST, token_for
from tests.harness.processes import claimed_ids, service_env, start_api, start_workers

pytestmark = [pytest.mark.faults, pytest.mark.slow]

USERS = ("ann", "bob", "cy", "dee")
JOBS_PER_USER = 50
#: The smallest job there is: one task, one epoch, 8x8 digits.
SPEC = {**SMALLEST, "batch_size": 256}
DEADLINE_S = 600  # generous: a loaded 2-core machine needs ~150 s


def _submit_all(url: str, tokens: dict[str, str], users: tuple[str, ...]) -> dict[str, list[int]]:
    """Each user's thread submits JOBS_PER_USER jobs, all threads released together."""
    submitted: dict[str, list[int]] = {u: [] for u in users}
    errors: list[str] = []
    gate = threading.Barrier(len(users))

    def submit(user: str) -> None:
        with httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {tokens[user]}"}, timeout=60
        ) as client:
            gate.wait()
            for i in range(JOBS_PER_USER):
                response = client.post("/v1/experiments", json={**SPEC, "seed": i, "tags": [user]})
                if response.status_code != 201:
                    errors.append(f"{user}: {response.status_code} {response.text}")
                    return
                submitted[user].append(response.json()["id"])

    threads = [threading.Thread(target=submit, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=DEADLINE_S)
    assert not errors, errors
    return submitted


def _started(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT count(*) FROM experiments WHERE started_at IS NOT NULL")).scalar_one()


def _wait_all_finished(engine: sa.Engine) -> dict[str, int]:
    deadline = time.monotonic() + DEADLINE_S
    while True:
        with engine.connect() as conn:
            counts = dict(conn.execute(sa.text("SELECT status, count(*) FROM experiments GROUP BY status")).all())
        if not counts.get("queued") and not counts.get("running"):
            return counts
        assert time.monotonic() < deadline, f"not finished after {DEADLINE_S} s: {counts}"
        time.sleep(0.5)


@pytest.fixture(params=["postgresql", "sqlite"])
def database(request, tmp_path) -> str:
    if request.param == "postgresql":
        return request.getfixturevalue("pg_database")
    return f"sqlite:///{tmp_path / 'ewc.db'}"


def test_200_jobs_of_4_users_one_backlog_first_each_run_once_and_share_fairly(
    tmp_path, database, private_redis, processes, say
):
    upgrade(database)
    tokens = {user: token_for(database, user) for user in USERS}
    # One TensorFlow thread pool each: two workers on a small machine do not fight.
    env = service_env(
        database, private_redis.url, tmp_path / "data", fast_recovery=True,
        TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1",
    )
    _, url = start_api(processes, env)

    started = time.monotonic()
    submitted = _submit_all(url, tokens, USERS[:1])  # Ann's whole backlog, committed first
    submitted |= _submit_all(url, tokens, USERS[1:])  # then the three others at once
    submit_s = time.monotonic() - started
    owner_of = {i: u for u, ids in submitted.items() for i in ids}
    assert len(owner_of) == len(USERS) * JOBS_PER_USER
    assert max(submitted["ann"]) < min(i for u in USERS[1:] for i in submitted[u])

    engine = sa.create_engine(database)
    try:
        # One worker first: the order of the first 20 claims is the database's alone.
        workers = start_workers(processes, env, count=1)
        deadline = time.monotonic() + DEADLINE_S
        while _started(engine) < 20:
            assert time.monotonic() < deadline, "20 jobs did not start"
            time.sleep(0.2)
        with engine.connect() as conn:
            first_ids = conn.execute(
                sa.text(
                    "SELECT id FROM experiments WHERE started_at IS NOT NULL "
                    "ORDER BY started_at, id LIMIT 20"
                )
            ).scalars().all()
        early = [owner_of[i] for i in first_ids]
        # Ann's 50 were all waiting first, yet the others' jobs start at once: 5 each.
        assert Counter(early) == {u: 5 for u in USERS}, early
        assert set(early[:4]) == set(USERS), early
        workers += start_workers(processes, env, count=1)
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {tokens['ann']}"}) as c:
            queues = c.get("/v1/queues").json()["queues"]["cpu"]
        live = {w["name"]: w["device"] for w in queues["workers"]}
        assert len(live) == 2 and set(live.values()) == {"CPU"}, queues

        counts = _wait_all_finished(engine)
        run_s = time.monotonic() - started
        with engine.connect() as conn:
            jobs = conn.execute(
                sa.text(
                    "SELECT e.id, e.status, e.attempts, "
                    "(SELECT count(*) FROM epoch_metrics m WHERE m.experiment_id = e.id), "
                    "(SELECT count(*) FROM task_results t WHERE t.experiment_id = e.id) "
                    "FROM experiments e ORDER BY e.started_at, e.id"
                )
            ).all()
    finally:
        engine.dispose()

    assert counts == {"succeeded": 200}, counts
    assert all(j.attempts == 1 for j in jobs), [j for j in jobs if j.attempts != 1]
    assert all((j[3], j[4]) == (1, 1) for j in jobs), [j for j in jobs if (j[3], j[4]) != (1, 1)]
    claimed = Counter(i for w in workers for i in claimed_ids(w))
    assert set(claimed) == set(owner_of) and set(claimed.values()) == {1}, claimed.most_common(3)
    per_worker = [len(claimed_ids(w)) for w in workers]

    order = [owner_of[j.id] for j in jobs]  # users in the order their jobs started
    first_20 = Counter(order[:20])
    assert order[:20] == early, (order[:20], early)
    first_seen = {u: order.index(u) for u in USERS}
    last_seen = {u: len(order) - 1 - order[::-1].index(u) for u in USERS}
    # Nobody's jobs all come before another's.
    assert max(first_seen.values()) < min(last_seen.values()), (first_seen, last_seen)
    longest_run = _longest_run(order)
    assert longest_run <= 10, order

    with httpx.Client(base_url=url) as c:
        text = c.get("/metrics").text
    assert 'ewc_job_duration_seconds_count{status="succeeded"} 200.0' in text
    assert "ewc_epoch_duration_seconds_count 200.0" in text
    assert all("experiment_id=" in line for w in workers for line in w.lines if "event=epoch" in line)
    say(
        f"[{database.split(':')[0]}] ann's 50 jobs, then 3 threads' 150, submitted in "
        f"{submit_s:.1f} s; 2 workers (both listed alive on "
        f"/v1/queues, device CPU) ran them all in {run_s:.1f} s: 200 succeeded, attempts 1, "
        f"1 epoch + 1 task row each, each claimed once (workers ran {per_worker}); start "
        f"order: first 20 = {dict(first_20)}, users first seen at {first_seen}, longest run "
        f"of one user's jobs {longest_run}"
    )


def _longest_run(order: list[str]) -> int:
    """Length of the longest stretch of consecutive jobs of one user."""
    best = run = 0
    previous = None
    for user in order:
        run = run + 1 if user == previous else 1
        best, previous = max(best, run), user
    return best
