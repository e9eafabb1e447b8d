"""The team deployment on a real Docker engine, exactly as README.md's compose section says.

What it does (each step printed with its time):

1. an engine: the running one, else `dockerd` started here (and stopped at the end);
   Debian's docker.io is installed first when it is missing and we are root;
2. the base images the files name, as Debian stand-ins when no registry answers
   (tests/docker/engine.py; built once, found by tag later); MinIO's stand-in is moto's
   S3 server under MinIO's command line (tests/docker/standins/minio.Dockerfile);
3. the README's build commands: `docker build --target api` and `--target cpu`, with
   BuildKit, this machine's pip settings as the `pip_conf`/`pip_ca` secrets and
   `--network host` (containers here have no outbound network);
4. the README's `.env` (an admin token, a PostgreSQL and a MinIO password) in a temporary
   env file, and `docker compose up -d --wait` (the no-GPU command): every service healthy,
   the migration and `createbucket` exited 0 (the bucket `ewc` created), the GPU image
   neither built nor pulled;
5. the README's experiment over HTTP with the admin token from that file: metrics; its
   checkpoints, final model and TensorBoard files are objects in the bucket (listed with
   boto3 from the host, on MinIO's published port), the worker kept no copy, and the API
   lists them and serves the model byte for byte as stored;
6. a second, longer job; `docker compose restart worker-cpu` while it runs: the job goes
   back to the queue and the restarted worker fetches its last checkpoint from the bucket
   and finishes it (every epoch once);
7. a third job; PostgreSQL and Redis killed, then the worker stopped (a host shutting
   down): it exits within seconds although it cannot hand the job back;
8. `docker compose down`, a new EWC_ADMIN_TOKEN in the env file, `up -d --wait`: the
   experiments, metrics and artifacts (the bucket, on its volume) are still there, the
   bucket is found, not made again, the old token is refused (401), and the third job is
   taken over once its heartbeat expired, resumed from its checkpoint in the bucket, and
   finishes;
9. `docker compose down -v`: nothing of the project is left (no anonymous volumes).

The project is `ewc-e2e` (`-p`) with images `ewc-e2e:{api,cpu}` (EWC_IMAGE) and its own
port, so a real deployment on the same engine is not touched.
Where no engine can be used or started it is skipped with the reason (a failure in strict
mode, as under CI: see tests/requirements.py).
"""

from __future__ import annotations

import hashlib
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


def bucket_client(port: int, password: str):
    """boto3 on MinIO's published S3 port, as MinIO's root user (`ewc`, the default)."""
    import boto3

    return boto3.client(
        "s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
        aws_access_key_id="ewc", aws_secret_access_key=password,
    )  # fmt: skip


def bucket_keys(s3, prefix: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket="ewc", Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def check_artifacts_in_bucket(s3, client: httpx.Client, experiment_id: int,
                              listed: dict) -> tuple[str, str]:
    """The README experiment's objects in s3://ewc/artifacts, and the API's view of them:
    (sha256 of model.keras, a summary of what the bucket holds)."""
    prefix = f"artifacts/experiments/{experiment_id}/"
    keys = bucket_keys(s3, prefix)
    for task in (1, 2, 3):  # each checkpoint published whole: its manifest is written last
        assert f"{prefix}task-{task}/.manifest.json" in keys, keys
        assert any(k.startswith(f"{prefix}task-{task}/.v-") and k.endswith("/state.npz")
                   for k in keys), keys
    assert f"{prefix}model.keras" in keys, keys
    events = [k for k in keys if k.startswith(f"{prefix}tensorboard/")]
    assert events, keys
    paths = {item["path"] for item in listed["items"]}
    assert {"model.keras", "task-1.zip", "task-2.zip", "task-3.zip"} <= paths, paths
    stored = s3.get_object(Bucket="ewc", Key=f"{prefix}model.keras")["Body"].read()
    served = client.get(f"/v1/experiments/{experiment_id}/artifacts/model.keras")
    assert served.status_code == 200 and served.content == stored, served.status_code
    summary = (f"{len(keys)} objects: task-1..3 manifests + files, model.keras "
               f"{len(stored)} bytes, {len(events)} TensorBoard file(s)")
    return hashlib.sha256(stored).hexdigest(), summary


def fetched_from_bucket(logs: str, experiment_id: int) -> str:
    """The bucket URL a worker fetched the experiment's checkpoint from (its log line)."""
    lines = [line for line in logs.splitlines()
             if f"event=checkpoint_fetched experiment_id={experiment_id} " in line]
    assert lines, logs[-3000:]
    source = lines[-1].split(" source=", 1)[1].split()[0]
    assert source.startswith(f"s3://ewc/artifacts/experiments/{experiment_id}/task-"), source
    return source


def untimed(listing: dict) -> dict:
    return {**listing, "items": [{k: v for k, v in item.items() if k != "modified"}
                                 for item in listing["items"]]}


def test_docker_compose_up_runs_the_readme_experiment_and_keeps_its_data(engine, tmp_path):
    t0 = time.monotonic()
    # The object store the test stands in for is the one the compose file names by default.
    assert f"${{MINIO_IMAGE:-{docker_engine.MINIO_IMAGE}}}" in (ROOT / "docker-compose.yml").read_text()
    stand_ins_possible = not all(engine.has_image(t) for t in docker_engine.BASE_IMAGES)
    if stand_ins_possible and not engine.has_image(docker_engine.DEBIAN_TAG):
        ensure_apt("debootstrap", "debootstrap")  # in case no registry answers
    pip = docker_engine.pip_secrets(tmp_path)
    engine.ensure_base_images(pip)

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
    port, s3_port = free_port(), free_port()
    token = "ewc_" + secrets.token_urlsafe(32)  # README: the .env recipe
    settings = {
        "EWC_ADMIN_TOKEN": token,
        "POSTGRES_PASSWORD": secrets.token_urlsafe(24),
        "MINIO_ROOT_PASSWORD": secrets.token_urlsafe(24),
        "EWC_IMAGE": IMAGE,
        "EWC_PUBLISH_PORT": str(port),
        "MINIO_PUBLISH_PORT": str(s3_port),
        "MINIO_CONSOLE_PORT": str(free_port()),
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
        assert set(states) == {
            "postgres", "redis", "minio", "migrate", "createbucket", "api", "worker-cpu"}, states
        for one_shot in ("migrate", "createbucket"):
            assert states[one_shot][0] == "exited" and states[one_shot][-1] == "0", states
        for name in ("postgres", "redis", "minio", "api", "worker-cpu"):
            assert states[name][:2] == ["running", "healthy"], (name, states)
        assert not engine.has_image(f"{IMAGE}:gpu")  # D1: the GPU image was never built
        made = compose("logs", "--no-color", "createbucket").stdout
        assert "bucket s3://ewc created (artifacts at s3://ewc/artifacts)" in made, made
        s3 = bucket_client(s3_port, settings["MINIO_ROOT_PASSWORD"])

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
            model_sha, stored = check_artifacts_in_bucket(s3, client, first, artifacts)
            logs = compose("logs", "--no-color", "worker-cpu").stdout
            # The worker's disk held only a working copy, removed once all was stored.
            assert f"event=working_copy_removed experiment_id={first} " in logs, logs[-3000:]
            engine.step(f"experiment {first}'s artifacts are in the bucket ({stored}); the API "
                        "lists them and serves model.keras as stored; no copy left on the worker",
                        t0)

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
            # Resumed from its last finished task's checkpoint, not from zero: the one in the
            # bucket (the restarted worker's working copy was emptied first).
            assert len(starts) == 2 and "first_task=1" not in starts[1], starts
            fetched = fetched_from_bucket(logs, second)
            engine.step(f"experiment {second} resumed by the restarted worker from "
                        f"{fetched}: succeeded", t0)

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
        found = compose("logs", "--no-color", "createbucket").stdout
        assert "bucket s3://ewc already exists" in found, found
        with httpx.Client(base_url=url, timeout=30) as client:
            old = client.get("/v1/experiments", headers=headers)
            assert old.status_code == 401, old.text  # the replaced token is revoked
            client.headers["Authorization"] = f"Bearer {new_token}"
            assert client.get(f"/v1/experiments/{first}").json() == job
            assert client.get(f"/v1/experiments/{first}/metrics").json() == metrics
            # The stand-in replays its requests at start, so its objects' times are new ones.
            assert untimed(client.get(f"/v1/experiments/{first}/artifacts").json()) == (
                untimed(artifacts))
            model = client.get(f"/v1/experiments/{first}/artifacts/model.keras")
            assert hashlib.sha256(model.content).hexdigest() == model_sha
            assert client.get(f"/v1/experiments/{second}").json()["status"] == "succeeded"
            # The job the stopped worker could not hand back is taken over once its
            # heartbeat has expired (EWC_HEARTBEAT_TIMEOUT_S), and finishes.
            job3 = wait_for(client, third, lambda j: j["status"] in FINAL, timeout=600)
            assert job3["status"] == "succeeded", job3
            rows = client.get(f"/v1/experiments/{third}/metrics").json()["epochs"]
            assert [e["epoch"] for e in rows] == list(range(1, 61)), rows
        logs = compose("logs", "--no-color", "worker-cpu").stdout
        fetched = fetched_from_bucket(logs, third)
        keys = bucket_keys(s3, f"artifacts/experiments/{third}/")
        assert f"artifacts/experiments/{third}/model.keras" in keys, keys
        engine.step(
            f"experiments, metrics and artifacts survived down/up (the bucket too); old "
            f"token: 401; experiment {third} taken over, resumed from {fetched}, finished", t0
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
