"""The first Fisher of a cold process against a warm one, old path against new, side by side.

    .venv/bin/python bench/cold_fisher.py              # about 2 minutes on 2 cores
    .venv/bin/python bench/cold_fisher.py --rounds 5 --heads multi --estimator sampled

Issue 13, target 3: in a cold `ewc run` the first Fisher should cost at most 3× a warm one.
Each round starts one fresh process per path (`vectorised`: `tf.vectorized_map` of
per-example gradients; `dense`: the analytic sums of `continual_core.fisher_dense`),
alternating which goes first so machine load hits both alike. A process is a cold run of
the README's first command (mnist-5k, 3-task permute, 15 epochs, EWC: 100 Fisher samples),
through `continual_core.trainer.train` as `ewc run` calls it, with every Fisher on its path
and each `FisherDiagonal.estimate` timed: "first" is the run's first (it traces), "warm" the
median of the run's second and `--warm` more calls on the same inputs after the run. The
end of task (what `ewc run` prints as "Fisher per task": the estimate and EWC's update) is
shown too. Figures are medians over rounds; ratios are per process (or per round), then the
median. The two paths' accuracy matrices are compared (they agree to the printed digits).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PATHS = ("vectorised", "dense")


def child(path: str, estimator: str, heads: str, warm: int) -> dict:
    """A cold run of the README's first command (`train`, as `ewc run` calls it) with every
    Fisher on `path`, each estimate timed; then `warm` more estimates on the last inputs."""
    from cli.run import default_dataset_dir
    from continual_core import fisher as fm
    from continual_core.spec import ExperimentSpec
    from continual_core.trainer import train

    build, estimate = fm.FisherDiagonal.__init__, fm.FisherDiagonal.estimate
    seen: dict = {"times": []}

    def build_on_path(self, model, est, layout=None, path_=None):  # type: ignore[no-untyped-def]
        build(self, model, est, layout, path=path)

    def timed(self, x, y, seed):  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        out = estimate(self, x, y, seed)
        out[0].numpy()
        seen["times"].append(time.perf_counter() - t0)
        seen.update(fisher=self, args=(x, y, seed))
        return out

    fm.FisherDiagonal.__init__, fm.FisherDiagonal.estimate = build_on_path, timed
    spec = ExperimentSpec(dataset="mnist-5k", epochs=15, splits=3, dataset_update="permute",
                          ewc={}, fisher=estimator, heads=heads)  # fmt: skip
    history = train(spec, dataset_cache=default_dataset_dir())
    for _ in range(warm):
        seen["fisher"].estimate(*seen["args"])
    first, *rest = seen["times"]
    return {"path": seen["fisher"].path, "first_s": first, "warm_s": statistics.median(rest),
            "end_of_task_s": history["timings"]["fisher_s"],
            "accuracy": history["accuracy_matrix"]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warm", type=int, default=10, help="warm calls per process")
    parser.add_argument("--estimator", default="empirical", choices=["empirical", "sampled", "seed"])
    parser.add_argument("--heads", default="shared", choices=["shared", "multi"])
    parser.add_argument("--child", choices=PATHS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.estimator, args.heads, args.warm)))
        return

    results: dict[str, list[dict]] = {p: [] for p in PATHS}
    for r in range(args.rounds):
        for path in PATHS if r % 2 == 0 else PATHS[::-1]:
            cmd = [sys.executable, __file__, "--child", path, "--warm", str(args.warm),
                   "--estimator", args.estimator, "--heads", args.heads]  # fmt: skip
            out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
            got = json.loads(out.stdout.strip().splitlines()[-1])
            assert got["path"] == path, got
            results[path].append(got)
            print(f"round {r + 1} {path:>10}: first {got['first_s']:.3f} s, "
                  f"warm {got['warm_s'] * 1000:.1f} ms", file=sys.stderr)  # fmt: skip

    def med(path: str, key: str) -> float:
        return statistics.median(g[key] for g in results[path])

    print(f"\nmlp, mnist-5k permute, EWC, {args.estimator}, heads {args.heads}, 100 examples; "
          f"medians of {args.rounds} cold runs per path\n")  # fmt: skip
    print("| path | first Fisher | warm Fisher | first ÷ warm | first end of task | second |")
    print("|---|---:|---:|---:|---:|---:|")
    for path in PATHS:
        ratio = statistics.median(g["first_s"] / g["warm_s"] for g in results[path])
        ends = [statistics.median(g["end_of_task_s"][i] for g in results[path]) for i in (0, 1)]
        print(f"| {path} | {med(path, 'first_s'):.3f} s | {med(path, 'warm_s') * 1000:.1f} ms "
              f"| {ratio:.0f}× | {ends[0]:.3f} s | {ends[1]:.3f} s |")  # fmt: skip
    pairs = list(zip(results["vectorised"], results["dense"]))
    first = statistics.median(a["first_s"] / b["first_s"] for a, b in pairs)
    warm = statistics.median(a["warm_s"] / b["warm_s"] for a, b in pairs)
    old_warm = statistics.median(b["first_s"] / a["warm_s"] for a, b in pairs)
    print(f"\nvectorised ÷ dense: first {first:.1f}×, warm {warm:.1f}×; "
          f"dense first ÷ vectorised warm: {old_warm:.1f}×")  # fmt: skip
    same = all(a["accuracy"] == b["accuracy"] for a, b in pairs)
    print(f"accuracy matrices of the two paths equal (3 decimals): {same}")

if __name__ == "__main__":
    main()
