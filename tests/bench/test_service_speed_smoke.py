"""bench/service_speed.py still runs end to end (tiny mode): real API, real worker, SQLite.

No timing is asserted — the figures are the benchmark's business (BENCHMARKS.md); this
only keeps the script from rotting as the API, store and worker change under it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def test_quick_run_prints_the_table(tmp_path: Path) -> None:
    figures = tmp_path / "figures.json"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "service_speed.py"),
            "--quick",
            "--json",
            str(figures),
        ],
        cwd=ROOT,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    for metric in (
        "GET /v1/experiments/{id}, 200 stored",
        "GET /v1/experiments?limit=50",
        "GET /metrics",
        "POST /v1/experiments, 20 by 8 clients (one user)",
        "(8 users)",
        "submit → running, idle worker (2 jobs)",
        "worker overhead",
    ):
        assert metric in out, out
    assert out.count("sqlite ") >= 6, out
    (report,) = json.loads(figures.read_text())
    assert report["backend"] == "sqlite"
    assert len(report["figures"]["get"]["ms"]) == 50
    assert len(report["figures"]["post"]["latencies"]) == 20
    assert len(report["figures"]["post_users"]["latencies"]) == 20
    assert [j["dataset"] for j in report["jobs"]] == ["digits", "digits"]
    assert all(j["train_total_s"] > 0 for j in report["jobs"])
