"""Which S3 library the artifact store (common/storage/) uses: boto3, s3fs or obstore,
measured side by side against one real S3 endpoint (moto's standalone server).

For each library installed: the cold import (a fresh process), making a client, put and
get of a 1 MiB checkpoint file, put / get / list of 50 small (4 KiB) files one after the
other, the same 50 puts 8 at a time, and what the library weighs on disk with its own
dependencies. Each figure is the median over `--repeat` rounds, in milliseconds.

    python -m venv /tmp/sbench
    /tmp/sbench/bin/pip install 'boto3<1.44' s3fs obstore 'moto[server]'
    /tmp/sbench/bin/python bench/storage_speed.py [--repeat 5]

(`boto3<1.44`: s3fs's aiobotocore pins botocore to 1.43, so the three cannot share one
environment at their newest versions; that pin is itself part of the verdict below.)
A library that is not installed gets a "not installed" row; moto[server] is required.

`--checkpoints` measures instead what a worker pays per task on each backend of
common/storage, with the real checkpoint of an `mlp` (MNIST) and a `cifarnet` (CIFAR-10)
EWC run (`Learner(spec).state()`, written by continual_core.checkpoint): *save* is
`save_checkpoint` (local: into the store's folder, all there is to it; s3: into the working
copy, then `publish_folder`), *restore* is what a resuming worker does (local:
`load_checkpoint` from the folder; s3: `latest_checkpoint` + `fetch_folder` with a cold
cache, then `load_checkpoint`). Needs the project's environment (TensorFlow, boto3, moto):

    .venv/bin/python bench/storage_speed.py --checkpoints [--repeat 5]

The choice: **boto3** (figures in BENCHMARKS.md, "Artifact storage libraries").

- It *is* "the standard way": the credential chain (AWS_* variables, profiles, web
  identity, instance roles) and `AWS_ENDPOINT_URL` are botocore's own, as are the error
  codes and the retry/timeout settings (`Config(retries=..., connect_timeout=...)`).
  s3fs wraps aiobotocore (the same chain, with a tight botocore pin that holds boto3 a
  minor version back: see the install line above); obstore has its own Rust client
  whose configuration follows the AWS_* names but is not botocore's chain, and a
  plain-HTTP endpoint (MinIO on a LAN) must be allowed explicitly.
- The test server, moto, depends on boto3 and botocore anyway, so the dev environment
  carries them whatever we pick; s3fs adds aiobotocore, aiohttp and fsspec.
- Its costs are paid where they do not matter: the import and the first client
  (≈ 0.1 s + 0.13 s, once per process, and only in a process whose store is s3://:
  common.storage imports boto3 on first use) and ≈ 23 MB installed. Per request it is
  ≈ 3-4 ms slower than obstore against the same server (put 1 MiB ≈ 16 ms against
  ≈ 8.5 ms); a checkpoint is published once per task, a few files and one manifest,
  which costs tens of milliseconds next to a task's seconds or minutes of training.
- obstore was the fastest and lightest throughout (no Python dependencies, a 16 MB
  wheel); if artifact traffic ever becomes hot (thousands of small objects a second),
  it is the one to revisit: common/storage/s3.py is the only module that knows boto3.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from packaging.requirements import Requirement

BUCKET = "bench"
SMALL_FILES, SMALL_BYTES, BIG_BYTES, THREADS = 50, 4096, 1 << 20, 8
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench-secret",
               "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}
LIBRARIES = {"boto3": "boto3", "s3fs": "s3fs", "obstore": "obstore"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto(port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("moto server did not start in 30 s (is moto[server] installed?)")


def installed_mb(dist: str, seen: set[str] | None = None) -> float:
    """Size on disk of `dist` and the dependencies it pulls in (each counted once)."""
    seen = set() if seen is None else seen
    name = dist.lower().replace("_", "-")
    if name in seen:
        return 0.0
    seen.add(name)
    try:
        d = md.distribution(dist)
    except md.PackageNotFoundError:
        return 0.0
    size = sum(f.size or 0 for f in d.files or []) / 1e6
    for line in d.requires or []:
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            size += installed_mb(req.name, seen)
    return size


def cold_start_ms(name: str, endpoint: str, repeat: int) -> tuple[float, float]:
    """Medians of a fresh process's `import <library>` and of its first client (ms)."""
    runs = [subprocess.run([sys.executable, __file__, "--child", name, endpoint],
                           capture_output=True, text=True, check=True).stdout.split()
            for _ in range(repeat)]
    return tuple(statistics.median(float(r[i]) for r in runs) * 1e3 for i in (0, 1))


def child(name: str, endpoint: str) -> None:
    """In a fresh process: print the seconds of the import and of the first client."""
    t0 = time.perf_counter()
    __import__(LIBRARIES[name])
    t1 = time.perf_counter()
    CLIENTS[name](endpoint)
    print(t1 - t0, time.perf_counter() - t1)


class Boto3:
    def __init__(self, endpoint: str):
        import boto3

        self.c = boto3.client("s3", endpoint_url=endpoint)

    def put(self, key, data):
        self.c.put_object(Bucket=BUCKET, Key=key, Body=data)

    def put_file(self, key, path):
        self.c.upload_file(str(path), BUCKET, key)

    def get(self, key):
        return self.c.get_object(Bucket=BUCKET, Key=key)["Body"].read()

    def list(self, prefix):
        pages = self.c.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        return [o["Key"] for p in pages for o in p.get("Contents", [])]

    def put_many(self, items):
        with ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(lambda kv: self.put(*kv), items))


class S3fs:
    def __init__(self, endpoint: str):
        import s3fs

        self.fs = s3fs.S3FileSystem(endpoint_url=endpoint, skip_instance_cache=True)

    def put(self, key, data):
        self.fs.pipe_file(f"{BUCKET}/{key}", data)

    def put_file(self, key, path):
        self.fs.put_file(str(path), f"{BUCKET}/{key}")

    def get(self, key):
        return self.fs.cat_file(f"{BUCKET}/{key}")

    def list(self, prefix):
        self.fs.invalidate_cache()
        return self.fs.find(f"{BUCKET}/{prefix}")

    def put_many(self, items):  # fsspec's own batching: one asyncio gather
        self.fs.pipe({f"{BUCKET}/{k}": v for k, v in items}, batch_size=THREADS)


class Obstore:
    def __init__(self, endpoint: str):
        from obstore.store import S3Store

        self.obs = __import__("obstore")
        self.s = S3Store(BUCKET, endpoint=endpoint, client_options={"allow_http": True})

    def put(self, key, data):
        self.obs.put(self.s, key, data)

    def put_file(self, key, path):
        self.obs.put(self.s, key, Path(path))

    def get(self, key):
        return bytes(self.obs.get(self.s, key).bytes())

    def list(self, prefix):
        return [m["path"] for batch in self.obs.list(self.s, prefix) for m in batch]

    def put_many(self, items):
        with ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(lambda kv: self.put(*kv), items))


CLIENTS: dict[str, Callable[[str], object]] = {"boto3": Boto3, "s3fs": S3fs, "obstore": Obstore}


def timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1e3


def one_round(client, base: str, big: Path, small: bytes) -> dict[str, float]:
    """Milliseconds of each operation once, under the fresh key prefix `base`."""
    items = [(f"{base}/s/{i:03d}", small) for i in range(SMALL_FILES)]
    ms = {
        "put 1 MiB": timed(lambda: client.put_file(f"{base}/big", big)),
        "get 1 MiB": timed(lambda: client.get(f"{base}/big")),
        "put 50": timed(lambda: [client.put(k, v) for k, v in items]),
        "get 50": timed(lambda: [client.get(k) for k, _ in items]),
        "list 50": timed(lambda: client.list(f"{base}/s/")),
        f"put 50 ×{THREADS}": timed(lambda: client.put_many([(k + "p", v) for k, v in items])),
    }
    assert len(client.list(f"{base}/s/")) == 2 * SMALL_FILES
    return ms


def measure(name: str, endpoint: str, repeat: int, big: Path) -> dict[str, float]:
    row = dict(zip(("import", "1st client"), cold_start_ms(name, endpoint, repeat)))
    row["client"] = statistics.median(timed(lambda: CLIENTS[name](endpoint)) for _ in range(repeat))
    client = CLIENTS[name](endpoint)
    small = os.urandom(SMALL_BYTES)
    rounds: dict[str, list[float]] = {}
    for _ in range(repeat):
        for label, ms in one_round(client, f"{name}/{uuid.uuid4().hex}", big, small).items():
            rounds.setdefault(label, []).append(ms)
    row.update({k: statistics.median(v) for k, v in rounds.items()})
    row["MB"] = installed_mb(name)
    return row


CHECKPOINT_SPECS = {
    "mlp": {"model": "mlp", "dataset": "mnist", "splits": 3, "ewc": {"lambda": 100}},
    "cifarnet": {"model": "cifarnet", "dataset": "cifar10", "splits": 5, "ewc": {"lambda": 100}},
}


def checkpoint_rows(endpoint: str, repeat: int) -> list[tuple[str, str, float, float, float]]:
    """(model, backend, checkpoint MB, save ms, restore ms), medians over `repeat`."""
    from common.storage import ChecksumCache, open_store
    from continual_core.checkpoint import load_checkpoint, save_checkpoint
    from continual_core.learner import Learner
    from continual_core.spec import ExperimentSpec

    rows = []
    for model, raw in CHECKPOINT_SPECS.items():
        spec = ExperimentSpec.model_validate(raw)
        state, spec_json = Learner(spec).state(), spec.to_json_dict()
        history = {"spec": spec_json, "epochs": [], "matrix": []}
        for backend in ("local", "s3"):
            saves, restores, size = [], [], 0.0
            stores = tempfile.TemporaryDirectory()
            # One store per process, as a worker has (its client made once, warm).
            store = open_store(str(Path(stores.name) / "store") if backend == "local"
                               else f"s3://{BUCKET}/checkpoints")
            store.check()
            for _ in range(repeat):
                with tempfile.TemporaryDirectory() as tmp:
                    root, key = Path(tmp), f"experiments/{uuid.uuid4().hex[:8]}"
                    folder = store.local_path(key) if backend == "local" else root / "work"
                    t = time.perf_counter()
                    written = save_checkpoint(folder, 1, state, history)
                    if backend == "s3":
                        store.publish_folder(f"{key}/task-1", written)
                    saves.append((time.perf_counter() - t) * 1e3)
                    size = sum(f.stat().st_size for f in written.iterdir()) / 1e6
                    t = time.perf_counter()
                    if backend == "s3":
                        latest = store.latest_checkpoint(key)
                        written = store.fetch_folder(latest.key, root / "resume" / "task-1",
                                                     ChecksumCache(root / "cache"))
                    load_checkpoint(written, state, spec_json)
                    restores.append((time.perf_counter() - t) * 1e3)
            stores.cleanup()
            rows.append((model, backend, size, statistics.median(saves),
                         statistics.median(restores)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--checkpoints", action="store_true",
                        help="checkpoint save / restore per backend instead of the libraries")
    parser.add_argument("--child", nargs=2, metavar=("LIBRARY", "ENDPOINT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(*args.child)
    if args.checkpoints:
        return main_checkpoints(args.repeat)
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    os.environ.update(CREDENTIALS)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    server = start_moto(port)
    try:
        import boto3

        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
        rows: dict[str, dict[str, float] | None] = {}
        with tempfile.TemporaryDirectory() as tmp:
            big = Path(tmp) / "state.npz"
            big.write_bytes(os.urandom(BIG_BYTES))
            for name in CLIENTS:
                try:
                    version = md.version(name)
                except md.PackageNotFoundError:
                    rows[name] = None
                    continue
                rows[f"{name} {version}"] = measure(name, endpoint, args.repeat, big)
    finally:
        server.kill()
        server.wait()
    columns = next((list(r) for r in rows.values() if r), [])
    print(f"median of {args.repeat} rounds, ms (MB: installed size with dependencies); "
          f"moto server {md.version('moto')}, Python {sys.version.split()[0]}")
    print("| library | " + " | ".join(columns) + " |")
    print("|---|" + "---:|" * len(columns))
    for name, row in rows.items():
        cells = [f"{row[c]:.0f}" if row[c] >= 10 else f"{row[c]:.1f}" for c in columns] if row \
            else ["not installed"] + [""] * (len(columns) - 1)
        print(f"| {name} | " + " | ".join(cells) + " |")


def main_checkpoints(repeat: int) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the project's packages
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    os.environ.update(CREDENTIALS, AWS_ENDPOINT_URL=endpoint)
    server = start_moto(port)
    try:
        import boto3

        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
        rows = checkpoint_rows(endpoint, repeat)
    finally:
        server.kill()
        server.wait()
    print(f"median of {repeat} rounds, ms; s3: moto server {md.version('moto')} on 127.0.0.1, "
          f"boto3 {md.version('boto3')}, Python {sys.version.split()[0]}")
    print("| model | backend | checkpoint MB | save ms | restore ms |")
    print("|---|---|---:|---:|---:|")
    for model, backend, size, save, restore in rows:
        print(f"| {model} | {backend} | {size:.2f} | {save:.0f} | {restore:.0f} |")


if __name__ == "__main__":
    main()
