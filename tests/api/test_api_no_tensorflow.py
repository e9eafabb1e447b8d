"""The API process never imports TensorFlow (nor Keras, nor the worker), and starts fast."""

from __future__ import annotations

import os
import subprocess
import sys

CODE = """
import sys, time
t = time.perf_counter()
import api.app
from fastapi.testclient import TestClient
app = api.app.create_app()
with TestClient(app) as client:
    assert client.get("/healthz").status_code == 200
elapsed = time.perf_counter() - t
heavy = sorted(m for m in ("tensorflow", "keras", "worker") if m in sys.modules)
print(f"import+create+start: {elapsed:.3f} s; heavy modules: {heavy}")
assert not heavy, heavy
assert elapsed < 30, elapsed  # generous (a loaded 2-core CI machine); TF alone is the check above
"""


def test_api_imports_no_tensorflow_and_starts_quickly(tmp_path, redis_url) -> None:
    env = {
        **os.environ,
        "EWC_DATA_DIR": str(tmp_path),
        "EWC_DATABASE_URL": f"sqlite:///{tmp_path / 'ewc.db'}",
        "EWC_BROKER_URL": redis_url,
    }
    env.pop("EWC_ADMIN_TOKEN", None)
    result = subprocess.run(
        [sys.executable, "-c", CODE], env=env, capture_output=True, text=True, timeout=120, check=False,
        cwd=tmp_path,
    )
    print(result.stdout.strip())
    assert result.returncode == 0, result.stderr[-3000:]
