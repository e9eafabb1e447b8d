"""The first Fisher of a cold process against a warm one, a tree before a change against
this one, side by side; and the whole `ewc run` of the README's first command.

    git worktree add /tmp/before-fisher <commit>         # the tree to compare with
    .venv/bin/python bench/cold_fisher.py --before /tmp/before-fisher --rounds 5
    .venv/bin/python bench/cold_fisher.py --before /tmp/before-fisher --heads multi --estimator sampled
    .venv/bin/python bench/cold_fisher.py --before /tmp/before-fisher --ewc-run 5   # + `ewc run` walls

Issue 13, target 3: in a cold `ewc run` the first Fisher should cost at most 3× a warm one.
Each round starts one fresh process per tree ("before": `--before`'s; "now": this one),
alternating which goes first so machine load hits both alike. A process is a cold run of
the README's first command (mnist-5k, 3-task permute, 15 epochs, EWC: 100 Fisher samples),
through `continual_core.trainer.train` as `ewc run` calls it, with each
`FisherDiagonal.estimate` timed: "first" is the run's first (whatever it waits for: a
trace, or a warm-up still running, is in it), "warm" the median of the run's second and
`--warm` more calls on the same inputs after the run, back to back ("second" alone: task 2's
estimate, after its training like the first); "train" is the run's `total_s`. The end
of task (what `ewc run` prints as "Fisher per task": the estimate and EWC's update) is shown
too. `--ewc-run N` then times N more rounds of the whole command (`ewc run ... --json`, process
start to exit) per tree, alternating, and checks their JSON results are equal but for timings.
Figures are medians over rounds; ratios are per process, then the median.
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
README_RUN = ["run", "--dataset", "mnist-5k", "--epochs=15", "--splits=3",
              "--dataset-update=permute", "--ewc", "--json"]  # fmt: skip


def child(estimator: str, heads: str, warm: int) -> dict:
    """A cold run of the README's first command (`train`, as `ewc run` calls it), each
    estimate timed; then `warm` more estimates on the last inputs."""
    from cli.run import default_dataset_dir
    from continual_core import fisher as fm
    from continual_core.spec import ExperimentSpec
    from continual_core.trainer import train

    estimate = fm.FisherDiagonal.estimate
    seen: dict = {"times": []}

    def timed(self, x, y, seed):  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        out = estimate(self, x, y, seed)
        out[0].numpy()
        seen["times"].append(time.perf_counter() - t0)
        seen.update(fisher=self, args=(x, y, seed))
        return out

    fm.FisherDiagonal.estimate = timed
    join = getattr(fm.FisherDiagonal, "join_warm_up", None)  # a tree with the warm-up
    if join is not None:

        def timed_join(self):  # type: ignore[no-untyped-def]
            t0 = time.perf_counter()
            join(self)
            seen.setdefault("waits", []).append(time.perf_counter() - t0)

        fm.FisherDiagonal.join_warm_up = timed_join
    spec = ExperimentSpec(dataset="mnist-5k", epochs=15, splits=3, dataset_update="permute",
                          ewc={}, fisher=estimator, heads=heads)  # fmt: skip
    history = train(spec, dataset_cache=default_dataset_dir())
    for _ in range(warm):
        seen["fisher"].estimate(*seen["args"])
    first, *rest = seen["times"]
    return {"path": seen["fisher"].path, "first_s": first, "warm_s": statistics.median(rest),
            "second_s": rest[0], "waited_s": seen.get("waits", [0.0])[0], "end_of_task_s": history["timings"]["fisher_s"], "train_s": history["timings"]["total_s"],
            "accuracy": history["accuracy_matrix"], "losses": [e["loss"] for e in history["epochs"]]}  # fmt: skip


def _env(tree: Path) -> dict:
    return {**os.environ, "PYTHONPATH": str(tree)}  # the tree's packages before the editable install's


def _ewc_run(tree: Path) -> tuple[float, dict]:
    """Wall of one `ewc run` of the README's first command from `tree`, and its result less timings."""
    cmd = [sys.executable, "-c", "import sys; from cli.main import main; sys.exit(main())", *README_RUN]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=tree, env=_env(tree))
    wall = time.perf_counter() - t0
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result.pop("timings", None)
    for epoch in result.get("epochs", []):  # its train_s and eval_s
        for key in [k for k in epoch if k.endswith("_s")]:
            epoch.pop(key)
    return wall, result


def _rounds(n: int, trees: dict[str, Path], run: object) -> dict[str, list]:
    """`run(name, tree)` n times per tree, alternating which goes first."""
    names = list(trees)
    got: dict[str, list] = {name: [] for name in names}
    for r in range(n):
        for name in names if r % 2 == 0 else names[::-1]:
            got[name].append(run(name, trees[name]))  # type: ignore[operator]
    return got


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", type=Path, required=False, help="the tree to compare with")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warm", type=int, default=10, help="warm calls per process")
    parser.add_argument("--estimator", default="empirical", choices=["empirical", "sampled", "seed"])
    parser.add_argument("--heads", default="shared", choices=["shared", "multi"])
    parser.add_argument("--ewc-run", type=int, default=0, help="rounds of the whole `ewc run`")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.estimator, args.heads, args.warm)))
        return
    trees = {"before": args.before.resolve(), "now": ROOT} if args.before else {"now": ROOT}

    def cold(name: str, tree: Path) -> dict:
        cmd = [sys.executable, __file__, "--child", "--warm", str(args.warm),
               "--estimator", args.estimator, "--heads", args.heads]  # fmt: skip
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=tree, env=_env(tree))
        got = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{name:>6}: first {got['first_s'] * 1000:.1f} ms (of it waiting for the warm-up "
              f"{got['waited_s'] * 1000:.1f} ms), warm {got['warm_s'] * 1000:.2f} ms, "
              f"train {got['train_s']:.2f} s", file=sys.stderr)  # fmt: skip
        return got

    results = _rounds(args.rounds, trees, cold)
    print(f"\nmlp ({results['now'][0]['path']} Fisher), mnist-5k permute, EWC, {args.estimator}, "
          f"heads {args.heads}, 100 examples; medians of {args.rounds} cold runs per tree\n")  # fmt: skip
    print("| tree | first Fisher | of it, waiting | warm Fisher | first ÷ warm | first ÷ second "
          "| first end of task | second | train (total_s) |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, runs in results.items():
        ratio = statistics.median(g["first_s"] / g["warm_s"] for g in runs)
        to_second = statistics.median(g["first_s"] / g["second_s"] for g in runs)
        ends = [statistics.median(g["end_of_task_s"][i] for g in runs) for i in (0, 1)]
        first, warm = (statistics.median(g[k] for g in runs) for k in ("first_s", "warm_s"))
        train_s = statistics.median(g["train_s"] for g in runs)
        waited = statistics.median(g["waited_s"] for g in runs)
        print(f"| {name} | {first * 1000:.1f} ms | {waited * 1000:.1f} ms | {warm * 1000:.2f} ms | {ratio:.1f}× | {to_second:.1f}× "
              f"| {ends[0]:.3f} s | {ends[1]:.3f} s | {train_s:.2f} s |")  # fmt: skip
    if args.before:
        pairs = list(zip(results["before"], results["now"]))
        train = statistics.median(b["train_s"] / a["train_s"] for a, b in pairs)
        print(f"\ntrain (total_s) now ÷ before, per round: median {train:.3f}")
        same = all(a["accuracy"] == b["accuracy"] and a["losses"] == b["losses"] for a, b in pairs)
        print(f"\naccuracy matrices and epoch losses equal, before and now: {same}")

    if args.ewc_run:
        def whole(name: str, tree: Path) -> tuple[float, dict]:
            wall, result = _ewc_run(tree)
            print(f"{name:>6}: ewc run {wall:.2f} s", file=sys.stderr)
            return wall, result

        walls = _rounds(args.ewc_run, trees, whole)
        print(f"\n`ewc {' '.join(README_RUN)}`, process start to exit, {args.ewc_run} runs per tree")
        for name, runs in walls.items():
            print(f"{name}: median {statistics.median(w for w, _ in runs):.2f} s "
                  f"({', '.join(f'{w:.2f}' for w, _ in runs)})")  # fmt: skip
        if args.before:
            pairs = list(zip(walls["before"], walls["now"]))
            ratio = statistics.median(b[0] / a[0] for a, b in pairs)
            same = all(a[1] == b[1] for a, b in pairs)
            print(f"now ÷ before (per round, median): {ratio:.3f}; JSON results equal: {same}")


if __name__ == "__main__":
    main()
