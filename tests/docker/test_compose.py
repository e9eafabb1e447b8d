"""The team deployment on a real Docker engine, exactly as README.md's compose section says.

What it does (each step printed with its time):

1. an engine: the running one, else `dockerd` started here (and stopped at the end);
   Debian's docker.io is installed first when it is missing and we are root;
2. the base images the files name, as Debian stand-ins when no registry answers
   (tests/docker/engine.py; built once, found by tag later);
3. the README's build commands: `docker build --target api` and `--target cpu`, with
   BuildKit, this machine's pip settings as the `pip_conf`/`pip_ca` secrets and
   `--network host` (containers here have no outbound network);
4. the README's `.env` (an admin token, a PostgreSQL password) in a temporary env file,
   and `docker compose up -d --wait` (the no-GPU command): every service healthy, the
   migration exited 0, the GPU image neither built nor pulled;
5. the README's experiment over HTTP with the admin token from that file: metrics;
6. a second, longer job; `docker compose restart worker-cpu` while it runs: the job goes
   back to the queue and the restarted worker finishes it (attempt 2, every epoch once);
7. a third job; PostgreSQL and Redis killed, then the worker stopped (a host shutting
   down): it exits within seconds although it cannot hand the job back;
8. `docker compose down`, a new EWC_ADMIN_TOKEN in the env file, `up -d --wait`: the
   experiments, metrics and artifacts are still there, the old token is refused (401),
   and the third job is taken over once its heartbeat expired and finishes;
9. `docker compose down -v`: nothing of the project is left (no anonymous volumes).

The project is `ewc-e2e` (`-p`) with images `ewc-e2e:{api,cpu}` (EWC_IMAGE) and its own
port, so a real deployment on the same engine is not touched.
Where no engine can be used or started it is skipped with the reason (a failure in strict
mode, as under CI: see tests/requirements.py).
"""

from __future__ import annotations

import secrets
import shutil
import socket
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from tests.docker import engine as docker_engine
from tests.requirements import ensure_apt, missing

ROOT = docker_engine.ROOT
PROJECT = "ewc-e2e"
IMAGE = "ewc-e2e"
README_SPEC = {  # README.md, "Quick start": the curl body
    "dataset": "mnist-5k",
    "dataset_update": "permute",
    "splits": 3,
    "epochs": 15,
    "ewc": {"lambda": 100},
}
FINAL = {"succeeded", "failed", "cancelled"}
DONE = "docker compose down -v: no volume left behind"

pytestmark = [pytest.mark.docker, pytest.mark.timeout(2400)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_env(path: Path, values: dict[str, str]) -> None:
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    workdir = Path(tempfile.mkdtemp(prefix="ewc-docker-"))  # kept: logs for a failure
    # Debian's docker.io: its CLI (/usr/bin/docker, BuildKit built in; another `docker` on
    # PATH may lack it) and dockerd. A fresh machine of this kind has only a bare client.
    if not Path("/usr/bin/docker").exists() or not Path("/usr/sbin/dockerd").exists():
        ensure_apt("dockerd", "docker.io", find=lambda: (
            "/usr/sbin/dockerd" if Path("/usr/bin/docker").exists()
            and Path("/usr/sbin/dockerd").exists() else None))  # fmt: skip
    try:
        found = docker_engine.start_engine(workdir)
    except docker_engine.NoEngine as exc:
        missing("docker engine", str(exc))
    try:
        yield found
    finally:
        found.stop()
        print("\n[docker] what this test did:\n  " + "\n  ".join(found.log), flush=True)
        if any(line.endswith(DONE) for line in found.log):
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"[docker] logs kept in {workdir}", flush=True)


def wait_for(client: httpx.Client, experiment_id: int, ok, timeout: float = 600) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/v1/experiments/{experiment_id}").json()
        if ok(job):
            return job
        assert time.monotonic() < deadline, f"experiment {experiment_id} stuck: {job}"
        time.sleep(0.5)


def check_readme_metrics(metrics: dict, job: dict) -> None:
    assert job["status"] == "succeeded", job
    rows = metrics["epochs"]
    assert [e["epoch"] for e in rows] == list(range(1, 16))
    assert [e["task"] for e in rows] == [1] * 5 + [2] * 5 + [3] * 5
    matrix = metrics["accuracy_matrix"]
    assert len(matrix) == 3 and all(len(row) == 3 for row in matrix), matrix
    # Each task is learnt: right after training on task k its accuracy is far above chance.
    assert all(matrix[k][k] > 0.8 for k in range(3)), matrix
    assert job["summary"], job


def test_docker_compose_up_runs_the_readme_experiment_and_keeps_its_data(engine, tmp_path):
    t0 = time.monotonic()
    stand_ins_possible = not all(engine.has_image(t) for t in docker_engine.BASE_IMAGES)
    if stand_ins_possible and not engine.has_image(docker_engine.DEBIAN_TAG):
        ensure_apt("debootstrap", "debootstrap")  # in case no registry answers
    engine.ensure_base_images()

    pip = docker_engine.pip_secrets(tmp_path)
    for target in ("api", "cpu"):  # README: DOCKER_BUILDKIT=1 docker build --target ...
        engine.build_target(target, f"{IMAGE}:{target}", pip)
    base_mb = int(engine.run("image", "inspect", "-f", "{{.Size}}", "python:3.11-slim-bookworm")
                  .stdout.strip()) / 1e6
    sizes = {
        target: int(engine.run("image", "inspect", "-f", "{{.Size}}", f"{IMAGE}:{target}")
                    .stdout.strip()) / 1e6
        for target in ("api", "cpu")
    }
    added = {target: size - base_mb for target, size in sizes.items()}
    engine.step(
        f"image sizes: api {sizes['api']:.0f} MB, cpu {sizes['cpu']:.0f} MB; on the "
        f"{base_mb:.0f} MB base they add api {added['api']:.0f} MB, cpu {added['cpu']:.0f} MB",
        t0,
    )
    assert added["api"] * 4 < added["cpu"], added  # the slim API image has no TensorFlow
    no_tf = engine.run(
        "run", "--rm", f"{IMAGE}:api", "python", "-c",
        "import importlib.util as u, sys; sys.exit(u.find_spec('tensorflow') is not None)",
        check=False, timeout=120,
    )
    assert no_tf.returncode == 0, "TensorFlow is installed in the API image"

    # A weak admin token is refused before anything starts.
    weak = engine.run(
        "run", "--rm", "-e", "EWC_ADMIN_TOKEN=ewc_", "-e", "EWC_DATABASE_URL=sqlite://",
        f"{IMAGE}:api", "ewc", "api", check=False, timeout=120,
    )
    assert weak.returncode != 0 and "at least 24" in weak.stdout + weak.stderr, weak
    engine.step("a weak EWC_ADMIN_TOKEN (`ewc_`) is refused at start-up", t0)

    env_file = tmp_path / ".env"
    port = free_port()
    token = "ewc_" + secrets.token_urlsafe(32)  # README: the .env recipe
    settings = {
        "EWC_ADMIN_TOKEN": token,
        "POSTGRES_PASSWORD": secrets.token_urlsafe(24),
        "EWC_IMAGE": IMAGE,
        "EWC_PUBLISH_PORT": str(port),
        "EWC_HEARTBEAT_TIMEOUT_S": "20",  # a job whose worker died is taken over sooner
    }
    write_env(env_file, settings)
    base = [
        "compose", "-f", str(ROOT / "docker-compose.yml"), "--project-directory", str(ROOT),
        "--env-file", str(env_file), "-p", PROJECT,
    ]

    def compose(*args: str, timeout: float = 600, check: bool = True):
        return engine.run(*base, *args, timeout=timeout, check=check)

    volumes_before = set(engine.run("volume", "ls", "-q").stdout.split())
    compose("down", "-v", "--remove-orphans", check=False)  # a leftover of a crashed run
    try:
        up = compose("up", "-d", "--wait", check=False)
        assert up.returncode == 0, up.stdout + up.stderr + compose("logs", check=False).stdout
        engine.step("docker compose up -d --wait (no GPU): every service healthy", t0)
        ps = compose("ps", "-a", "--format", "{{.Service}} {{.State}} {{.Health}} {{.ExitCode}}")
        states = {line.split()[0]: line.split()[1:] for line in ps.stdout.splitlines()}
        assert set(states) == {"postgres", "redis", "migrate", "api", "worker-cpu"}, states
        assert states["migrate"][0] == "exited" and states["migrate"][-1] == "0", states
        for name in ("postgres", "redis", "api", "worker-cpu"):
            assert states[name][:2] == ["running", "healthy"], (name, states)
        assert not engine.has_image(f"{IMAGE}:gpu")  # D1: the GPU image was never built

        url = f"http://127.0.0.1:{port}"
        admin = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
        headers = {"Authorization": f"Bearer {admin['EWC_ADMIN_TOKEN']}"}
        with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
            created = client.post("/v1/experiments", json=README_SPEC)
            assert created.status_code == 201, created.text
            first = created.json()["id"]
            job = wait_for(client, first, lambda j: j["status"] in FINAL)
            metrics = client.get(f"/v1/experiments/{first}/metrics").json()
            check_readme_metrics(metrics, job)
            artifacts = client.get(f"/v1/experiments/{first}/artifacts").json()
            assert client.get(f"/v1/experiments/{first}/plots/curves.png").status_code == 200
            engine.step(f"README experiment {first}: succeeded, metrics and plot served", t0)

            longer = {**README_SPEC, "epochs": 60}
            second = client.post("/v1/experiments", json=longer).json()["id"]
            wait_for(client, second, lambda j: j["progress"]["task"] >= 2, timeout=600)
            compose("restart", "worker-cpu")
            engine.step(f"restarted worker-cpu while experiment {second} ran task 2", t0)
            job2 = wait_for(client, second, lambda j: j["status"] in FINAL)
            # A hand-back is not a failed attempt; each epoch row is stored once.
            assert (job2["status"], job2["attempts"]) == ("succeeded", 1), job2
            rows = client.get(f"/v1/experiments/{second}/metrics").json()["epochs"]
            assert [e["epoch"] for e in rows] == list(range(1, 61)), rows
            logs = compose("logs", "--no-color", "worker-cpu").stdout
            assert f"event=job_released experiment_id={second} " in logs, logs[-3000:]
            starts = [
                line for line in logs.splitlines()
                if f"event=run_start experiment_id={second} " in line
            ]
            # Resumed from its last finished task's checkpoint, not from zero.
            assert len(starts) == 2 and "first_task=1" not in starts[1], starts
            engine.step(f"experiment {second} resumed by the restarted worker: succeeded", t0)

            # A host shutting down: PostgreSQL and Redis are gone when the worker stops.
            third = client.post("/v1/experiments", json=longer).json()["id"]
            wait_for(client, third, lambda j: j["progress"]["task"] >= 2, timeout=600)
        ids = [compose("ps", "-q", name).stdout.strip() for name in ("postgres", "redis", "worker-cpu")]
        # PostgreSQL and Redis are gone first (deterministically: killed), then the worker
        # gets its SIGTERM and cannot hand its job back.
        engine.run("kill", ids[0], ids[1], timeout=120)
        sent = time.monotonic()
        engine.run("stop", "-t", "60", ids[2], timeout=120)
        stop_s = time.monotonic() - sent
        logs = engine.run("logs", ids[2])
        worker_log = logs.stdout + logs.stderr
        kept = engine.workdir / "worker-at-shutdown.log"
        kept.write_text(worker_log)
        engine.step(f"postgres and redis killed, then worker-cpu stopped in {stop_s:.1f} s", t0)
        assert f"event=job_release_failed experiment_id={third} " in worker_log, worker_log[-3000:]
        code = engine.run("inspect", "-f", "{{.State.ExitCode}}", ids[2]).stdout.strip()
        # It exited by itself, within the 60 s grace period (not SIGKILLed at its end: 137).
        # Most of its time is the container resolver failing on `postgres`/`redis` (~10 s each).
        assert code == "0" and stop_s < 60, (code, stop_s, worker_log[-3000:])

        compose("down")
        new_token = "ewc_" + secrets.token_urlsafe(32)
        write_env(env_file, {**settings, "EWC_ADMIN_TOKEN": new_token})
        up = compose("up", "-d", "--wait", check=False)
        assert up.returncode == 0, up.stdout + up.stderr
        engine.step("down, a new EWC_ADMIN_TOKEN, up -d --wait", t0)
        with httpx.Client(base_url=url, timeout=30) as client:
            old = client.get("/v1/experiments", headers=headers)
            assert old.status_code == 401, old.text  # the replaced token is revoked
            client.headers["Authorization"] = f"Bearer {new_token}"
            assert client.get(f"/v1/experiments/{first}").json() == job
            assert client.get(f"/v1/experiments/{first}/metrics").json() == metrics
            assert client.get(f"/v1/experiments/{first}/artifacts").json() == artifacts
            assert client.get(f"/v1/experiments/{second}").json()["status"] == "succeeded"
            # The job the stopped worker could not hand back is taken over once its
            # heartbeat has expired (EWC_HEARTBEAT_TIMEOUT_S), and finishes.
            job3 = wait_for(client, third, lambda j: j["status"] in FINAL, timeout=600)
            assert job3["status"] == "succeeded", job3
            rows = client.get(f"/v1/experiments/{third}/metrics").json()["epochs"]
            assert [e["epoch"] for e in rows] == list(range(1, 61)), rows
        engine.step(
            f"experiments, metrics and artifacts survived down/up; old token: 401; "
            f"experiment {third} taken over and finished", t0
        )
    finally:
        if compose("ps", "-a", "-q", check=False).stdout.strip():
            logs = compose("logs", "--tail", "40", check=False).stdout
            print(f"[docker] last logs:\n{logs[-6000:]}")
        compose("down", "-v", "--remove-orphans", check=False)
    left = {
        v for v in set(engine.run("volume", "ls", "-q").stdout.split()) - volumes_before
    }
    assert not left, f"volumes left behind: {left}"
    engine.step(DONE, t0)
