"""Fault (e): property-based fuzzing of the whole HTTP API, authenticated: no 5xx, ever.

Real processes: an API (uvicorn) on PostgreSQL and a redis-server. Schemathesis reads
`/openapi.json` and runs its examples, coverage, fuzzing and stateful phases against every
operation with an admin's bearer token (so every code path, cancels included, is
reachable), with a bounded number of examples per operation. Any 5xx is a failure; the
API's own request log is checked too.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from store.migrate import upgrade
from tests.e2e.conftest import start_api, token_for
from tests.faults.conftest import service_env
from tests.requirements import missing

pytestmark = [pytest.mark.faults, pytest.mark.slow]

ADMIN_TOKEN = "fuzz-admin-token-0123456789"
#: Examples per operation and phase; the whole run takes well under a minute.
MAX_EXAMPLES = os.environ.get("EWC_FUZZ_EXAMPLES", "15")
SEED = os.environ.get("EWC_FUZZ_SEED", "1")


def _schemathesis() -> list[str]:
    found = shutil.which("schemathesis") or shutil.which(
        "schemathesis", path=str(Path(sys.executable).parent)
    )
    if found is None:
        missing("schemathesis", "not installed (pip install -e '.[dev]')")
    return [found]


def test_schemathesis_finds_no_server_error(tmp_path, pg_database, private_redis, processes, say):
    command = _schemathesis()
    upgrade(pg_database)
    env = service_env(
        pg_database,
        private_redis.url,
        tmp_path / "data",
        EWC_ADMIN_TOKEN=ADMIN_TOKEN,
        EWC_EVENTS_MAX_S="1",  # a queued job's event stream closes after 1 s
    )
    api, url = start_api(processes, env)
    # Something to find: another user's experiments, one cancelled.
    other = {"Authorization": f"Bearer {token_for(pg_database, 'other')}"}
    with httpx.Client(base_url=url, headers=other, timeout=30) as client:
        spec = {"dataset": "digits", "dataset_update": "permute", "splits": 2, "epochs": 2}
        ids = [client.post("/v1/experiments", json=spec).json()["id"] for _ in range(3)]
        client.post(f"/v1/experiments/{ids[0]}/cancel")

    done = subprocess.run(
        [
            *command, "run", f"{url}/openapi.json",
            "--header", f"Authorization: Bearer {ADMIN_TOKEN}",
            "--checks", "not_a_server_error",
            "--phases", "examples,coverage,fuzzing,stateful",
            "--max-examples", MAX_EXAMPLES,
            "--seed", SEED,
            "--request-timeout", "10",
            "--generation-database", "none",
            "--workers", "2",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        check=False,
    )
    output = done.stdout + done.stderr
    cases = re.search(r"(\d+) generated", output)
    tested = re.search(r"Tested: (\d+)", output)
    failures = re.findall(r"ST\d+ [^\n]*", output)
    server_errors = [
        line for line in api.lines if "event=request" in line and re.search(r" status=5\d\d ", line)
    ]
    say(
        f"schemathesis (seed {SEED}, ≤{MAX_EXAMPLES} examples per operation and phase) ran "
        f"{cases.group(1) if cases else '?'} cases over {tested.group(1) if tested else '?'} "
        f"operations: exit code {done.returncode}, {len(failures)} failure line(s), "
        f"{len(server_errors)} 5xx in the API's request log"
    )
    assert done.returncode == 0, output[-6000:]
    assert not server_errors, server_errors[:10]
    assert tested and int(tested.group(1)) >= 19, output[-3000:]
    assert api.popen.poll() is None
