"""`ewc worker --slots 2`: two worker processes under one parent run every job exactly once.

Real processes: `ewc worker --slots 2` (a parent that starts two plain `ewc worker`s), an
embedded redis-server and a SQLite file or a PostgreSQL database; jobs are queued through
the store with their wake-ups, as the API does. Checks: each of 12 jobs succeeds with one
attempt and one claim in the logs; both slots ran some; a slot killed with SIGKILL is
restarted by the parent and the restarted one runs jobs too; SIGTERM to the parent stops
both children and it exits 0. Correctness only: nothing is timed. Three TensorFlow
start-ups (two slots, one restart): ~25 s on a quiet machine, ~3 min at load 12, so the
PostgreSQL run is marked slow.
"""

from __future__ import annotations

import os
import re
import signal
from collections import Counter
from collections.abc import Iterator

import pytest

from store.migrate import upgrade
from tests.conftest import PG_URL, postgres_available
from tests.harness.experiments import SMALLEST, Store
from tests.harness.processes import (
    EWC,
    Processes,
    data_path,
    embedded_redis,
    service_env,
    throwaway_database,
    wait_until,
)
from tests.requirements import missing

JOBS = 12


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def database(request, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ewc.db'}"
        return
    if not postgres_available():
        missing("PostgreSQL", f"EWC_TEST_PG={PG_URL}: not reachable")
    with throwaway_database(PG_URL, prefix="ewc_slots_") as url:
        yield url


def _wait_ready(parent, count: int) -> None:
    """Until `count` children have printed Celery's "ready." (they take messages)."""
    wait_until(
        f"{count} slots ready", lambda: sum(" ready." in x for x in list(parent.lines)) >= count,
        240, parent, pause=0.2,
    )  # fmt: skip


def _slot_pids(lines: list[str]) -> dict[int, int]:
    """The latest pid of each slot, from the parent's `event=slot_start` lines."""
    pids: dict[int, int] = {}
    for line in lines:
        if found := re.search(r"event=slot_start slot=(\d+) of=\d+ pid=(\d+)", line):
            pids[int(found[1])] = int(found[2])
    return pids


def _claims(lines: list[str]) -> list[tuple[int, str]]:
    """(experiment id, worker name) of every `event=job_claimed` line."""
    out = []
    for line in lines:
        if found := re.search(r"event=job_claimed experiment_id=(\d+) worker=(\S+)", line):
            out.append((int(found[1]), found[2]))
    return out


def _wait_all(store: Store, ids: list[int]) -> list[dict]:
    return [store.wait_for(i, {"succeeded", "failed", "cancelled"}, timeout=240) for i in ids]


def test_two_slots_run_each_job_exactly_once_and_the_parent_supervises_them(tmp_path, database):
    upgrade(database)
    with embedded_redis(tmp_path) as broker, Processes() as start:
        env = service_env(database, broker, data_path(tmp_path), EWC_WORKER_STOP_TIMEOUT_S="60")
        parent = start("slots", [*EWC, "worker", "--queue", "cpu", "--slots", "2"], env)
        _wait_ready(parent, 2)
        pids = _slot_pids(parent.lines)
        assert sorted(pids) == [1, 2], parent.output

        store = Store(database, broker)
        try:
            owner = store.user("ann")
            first = [store.submit(owner, {**SMALLEST, "seed": i}) for i in range(JOBS // 2)]
            jobs = _wait_all(store, first)
            assert {j["status"] for j in jobs} == {"succeeded"}, jobs

            # A slot that dies is restarted; the restarted process runs jobs too.
            os.kill(pids[1], signal.SIGKILL)
            parent.wait_for_line(lambda line: "event=slot_restarted slot=1" in line, 60)
            restarted = parent.wait_for_line(
                lambda line: "event=slot_start slot=1" in line and f"pid={pids[1]}" not in line
            )
            new_pid = int(restarted.rsplit("pid=", 1)[1])
            _wait_ready(parent, 3)
            second = [store.submit(owner, {**SMALLEST, "seed": 100 + i}) for i in range(JOBS // 2)]
            jobs += _wait_all(store, second)
            rows = [store.job(i) for i in first + second]
        finally:
            store.close()

        assert {j["status"] for j in jobs} == {"succeeded"}, jobs
        assert all(r["attempts"] == 1 for r in rows), rows
        claims = _claims(parent.lines)
        per_job = Counter(i for i, _ in claims)
        assert sorted(per_job) == sorted(first + second), claims
        assert set(per_job.values()) == {1}, per_job  # each job claimed exactly once
        # both slots ran some: the worker name is host:pid:random
        by_pid = Counter(int(w.split(":")[-2]) for _, w in claims)
        assert by_pid[pids[2]] > 0 and by_pid[pids[1]] + by_pid[new_pid] > 0, (by_pid, pids)
        assert by_pid[new_pid] > 0, (by_pid, new_pid)  # the restarted slot ran some too

        # SIGTERM to the parent stops every child; the parent exits 0.
        children = list(_slot_pids(parent.lines).values())
        assert parent.stop(signal.SIGTERM, timeout=90) == 0, parent.output
        for pid in children:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
        assert sum("event=slot_stopped" in line for line in parent.lines) == 2, parent.output
