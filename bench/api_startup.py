"""How long the API takes to import, build and start, and what it weighs.

Runs a fresh Python process per repetition (a cold start each time): `import api.app`,
`create_app()`, the lifespan (engine, Celery client, metrics registry) and one `/healthz`
through Starlette's TestClient. Prints each phase's median over the repetitions, in
milliseconds, the resident memory after start, and confirms TensorFlow was not imported.

    .venv/bin/python bench/api_startup.py [--repeat 7]

Uses SQLite in a temporary folder and the broker in EWC_BROKER_URL (default: local Redis;
an unreachable broker does not slow start-up — nothing connects until a request needs it).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
import api.app
t1 = time.perf_counter()
app = api.app.create_app()
t2 = time.perf_counter()
from fastapi.testclient import TestClient
t3 = time.perf_counter()
with TestClient(app) as client:
    t4 = time.perf_counter()
    assert client.get("/healthz").status_code == 200
    t5 = time.perf_counter()
print(json.dumps({
    "import_ms": (t1 - t0) * 1e3,
    "create_app_ms": (t2 - t1) * 1e3,
    "lifespan_ms": (t4 - t3) * 1e3,
    "first_request_ms": (t5 - t4) * 1e3,
    "import_create_start_ms": (t1 - t0 + t2 - t1 + t4 - t3) * 1e3,
    "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "tensorflow_imported": "tensorflow" in sys.modules,
}))
"""


def main() -> None:
    """Print the median of each start-up phase over `--repeat` cold starts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    root = Path(__file__).resolve().parent.parent
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "EWC_DATA_DIR": tmp,
            "EWC_DATABASE_URL": f"sqlite:///{tmp}/ewc.db",
            "PYTHONWARNINGS": "ignore",
        }
        env.setdefault("EWC_BROKER_URL", "redis://127.0.0.1:6379/0")
        env.pop("EWC_ADMIN_TOKEN", None)
        for _ in range(args.repeat):
            out = subprocess.run(
                [sys.executable, "-c", CHILD], env=env, cwd=root, capture_output=True,
                text=True, check=True,
            ).stdout
            runs.append(json.loads(out.strip().splitlines()[-1]))
    print(f"API cold start, median of {len(runs)} fresh processes (load avg "
          f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores):")
    for key in ("import_ms", "create_app_ms", "lifespan_ms", "import_create_start_ms",
                "first_request_ms", "max_rss_mb"):
        values = [r[key] for r in runs]
        print(f"  {key:<24} {statistics.median(values):8.1f}   (min {min(values):.1f})")
    print(f"  tensorflow imported: {any(r['tensorflow_imported'] for r in runs)}")


if __name__ == "__main__":
    main()
