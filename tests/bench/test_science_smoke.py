"""bench/science.py still runs end to end for the sections issue 12 added (one row, one seed).

No accuracy is asserted beyond what the layout needs — the figures are the README's business;
this keeps the one script that reproduces them from rotting as the methods change under it:
the methods × scenarios table prints ours beside the published figure and the scale the spec
resolved (online EWC's λ 1000 with a head per task), and the cost table prints every row.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _science(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "science.py"), *args],
        cwd=ROOT,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_table_prints_ours_beside_the_published_figure_and_the_resolved_scale() -> None:
    out = _science("--only", "table", "--methods", "fine-tune", "ewc", "--scenarios", "task-IL", "--seeds", "0")
    rows = {line.split("|")[1].strip(): line for line in out.splitlines() if line.startswith("| ")}
    assert "| 87.2 |" in rows["fine-tune"]  # van de Ven & Tolias 2019, split MNIST task-IL
    assert "| 99.1 |" in rows["EWC (online, default)"]
    assert "λ 1000, γ 0.9" in rows["EWC (online, default)"]  # 10× with heads=multi
    ours = float(rows["fine-tune"].split("|")[2])
    assert 50.0 < ours <= 100.0


def test_help_lists_every_section() -> None:
    out = _science("--help")
    for section in ("table", "scenarios", "sweeps", "cost"):
        assert section in out
