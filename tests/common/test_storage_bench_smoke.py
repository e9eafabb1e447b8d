"""bench/storage_speed.py still runs: one round against its own moto server, a table out."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_storage_bench_prints_its_table(moto_endpoint: str) -> None:  # moto present
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "storage_speed.py"), "--repeat", "1"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {line.split("|")[1].strip().split()[0]: line for line in done.stdout.splitlines()
            if line.startswith("| ") and not line.startswith("| library")}
    assert set(rows) == {"boto3", "s3fs", "obstore"}
    assert "not installed" not in rows["boto3"]  # the chosen library is always measured
    assert len(rows["boto3"].split("|")) == 13
