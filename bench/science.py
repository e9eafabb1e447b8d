"""Science on `mnist-5k`: the original's five commands, the λ / threshold scale of each Fisher
estimator, and what EWC does on `switch` — as Markdown tables, each cell a mean over seeds.

    .venv/bin/python bench/science.py            # full grid, seeds 0 1 2 (about 7 minutes on 2 cores)
    .venv/bin/python bench/science.py --quick    # a smaller grid (about 3 minutes)
    .venv/bin/python bench/science.py --only confirm  # close candidates on seeds 0-9 (~9 minutes)
    .venv/bin/python bench/science.py --only ewc --seeds 0 1 2 3 4 --json out.json

Every run goes through `continual_core.trainer.train` in this one process (TensorFlow is
imported once). Setup: mlp, 3-task stream, 15 epochs (5 per task), batch 256, Adam 1e-3,
no augmentation, one Adam across tasks; numbers are final TEST accuracies (fractions shown
as %), except the "val" column of the first table (the original printed validation
accuracy). Forgetting = mean over the earlier tasks of (best accuracy the task ever had −
its final accuracy), in percentage points. "Right after" = the lowest, over tasks, of a
task's accuracy right after training it (how well the network still learns new tasks).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cli import flags as F
from cli.run import default_dataset_dir
from continual_core.events import Callback, TaskEnd
from continual_core.spec import DEFAULT_EWC_LAMBDA, DEFAULT_FIM_THRESHOLD, ExperimentSpec

#: The original README's five commands; each is run with `--dataset mnist-5k` added.
ORIGINAL_COMMANDS = [
    "--epochs=15 --splits=3 --dataset-update=permute",
    "--epochs=15 --splits=3 --dataset-update=permute --ewc --ewc-lambda=0.01",
    "--epochs=15 --splits=3 --dataset-update=permute --fim --fim-threshold=1e-6",
    "--epochs=15 --splits=3 --dataset-update=switch --ewc --ewc-lambda=0.01",
    "--epochs=15 --splits=3 --dataset-update=switch --ewc --ewc-lambda=0.01 --incdet --incdet-threshold=1e-6",
]

#: The original's final validation accuracy (%, tasks 1/2/3, mean of 3 seeds; docs/original.md).
ORIGINAL_NUMBERS = ["18.0 / 40.6 / 53.7", "15.7 / 37.9 / 50.9", "77.0 / 24.4 / 7.2",
                    "1.1 / 0.0 / 72.5", "4.1 / 0.0 / 46.1"]

BASE = {"dataset": "mnist-5k", "epochs": 15, "splits": 3, "dataset_update": "permute"}

EWC_LAMBDAS = {
    "empirical": [10, 30, 100, 300, 1000, 3000],
    "sampled": [10, 30, 100, 300, 1000, 3000],
    "seed": [0.01, 0.03, 0.1, 0.3, 1],
}
FIM_THRESHOLDS = {
    "empirical": [1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2],
    "sampled": [1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2],
    "seed": [1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 0.3, 1, 3],
}
#: Close candidates from the grids, re-run on more seeds (`--only confirm`) to pick defaults.
CONFIRM = {
    ("ewc", "empirical"): [100, 300],
    ("ewc", "sampled"): [100, 300],
    ("ewc", "seed"): [0.1, 0.3],
    ("fim", "empirical"): [1e-4, 3e-4, 1e-3, 3e-3],
    ("fim", "sampled"): [3e-4, 1e-3, 3e-3],
    ("fim", "seed"): [0.1, 0.3, 1, 3],
}
QUICK_EWC = {"empirical": [10, 100, 1000], "sampled": [100], "seed": [0.01, 0.1, 1]}
QUICK_FIM = {"empirical": [1e-5, 1e-4, 1e-3], "sampled": [1e-4], "seed": [1e-6]}


def forgetting(matrix: np.ndarray) -> float:
    """Mean over tasks j < T of (best accuracy task j ever had − its final accuracy)."""
    t = len(matrix)
    return float(np.mean([matrix[:, j].max() - matrix[t - 1, j] for j in range(t - 1)]))


class _Frozen(Callback):
    """Remembers the fraction of weights FIM froze after each task."""

    def __init__(self) -> None:
        self.frozen: list[float] = []

    def on_task_end(self, event: TaskEnd) -> None:
        if event.frozen_fraction is not None:
            self.frozen.append(event.frozen_fraction)


@dataclass
class Runs:
    """The runs of one configuration, one per seed."""

    label: str
    spec: dict
    matrices: list[np.ndarray] = field(default_factory=list)
    final_val: list[list[float]] = field(default_factory=list)
    frozen_after_1: list[float] = field(default_factory=list)
    train_epoch_s: list[float] = field(default_factory=list)
    fisher_s: list[float] = field(default_factory=list)
    total_s: list[float] = field(default_factory=list)

    @property
    def final(self) -> np.ndarray:
        """Final test accuracy per task, mean over seeds."""
        return np.mean([m[-1] for m in self.matrices], axis=0)

    @property
    def averages(self) -> list[float]:
        return [float(m[-1].mean()) for m in self.matrices]

    @property
    def forgetting(self) -> float:
        return float(np.mean([forgetting(m) for m in self.matrices]))

    @property
    def right_after(self) -> float:
        """Mean over seeds of the lowest just-trained accuracy."""
        return float(np.mean([np.diag(m).min() for m in self.matrices]))

    def as_json(self) -> dict:
        return {"label": self.label, "spec": self.spec,
                "accuracy_matrices": [m.tolist() for m in self.matrices],
                "final_val": self.final_val, "frozen_after_task_1": self.frozen_after_1,
                "train_epoch_s": self.train_epoch_s, "fisher_s": self.fisher_s, "total_s": self.total_s}


def run(label: str, spec: dict, seeds: list[int], cache: Path) -> Runs:
    """Train `spec` once per seed in this process; print one progress line."""
    from continual_core.trainer import train

    runs = Runs(label, spec)
    t0 = time.perf_counter()
    for seed in seeds:
        frozen = _Frozen()
        result = train(ExperimentSpec.model_validate({**spec, "seed": seed}), dataset_cache=cache,
                       callback=frozen)
        runs.matrices.append(np.asarray(result["accuracy_matrix"], dtype=float))
        runs.final_val.append(result["epochs"][-1]["val_accuracy"])
        runs.frozen_after_1.extend(frozen.frozen[:1])
        timings = result["timings"]
        runs.train_epoch_s.append(float(np.mean(timings["train_epoch_s"])))
        runs.fisher_s.extend(timings["fisher_s"])
        runs.total_s.append(timings["total_s"])
    print(f"  {label}: average {100 * np.mean(runs.averages):.1f} % "
          f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    return runs


def spec_of_command(command: str) -> dict:
    """The spec the original's flags + `--dataset mnist-5k` give (through `ewc run`'s own flag
    handling, so defaults such as the estimator-specific λ apply exactly as on the CLI)."""
    kwargs = {**F.DEFAULTS, "dataset": "mnist-5k", "ewc": False, "ewc_lambda": None, "fim": False,
              "fim_threshold": None, "incdet": False}
    for token in shlex.split(command):
        name, _, value = token.removeprefix("--").partition("=")
        key = name.replace("-", "_")
        if not value:
            kwargs[key] = True
        elif key in ("epochs", "splits", "batch_size", "ewc_samples", "fim_samples", "seed"):
            kwargs[key] = int(value)
        elif key in ("ewc_lambda", "fim_threshold", "incdet_threshold", "learning_rate"):
            kwargs[key] = float(value)
        else:
            kwargs[key] = value
    return F.spec_from_flags(**kwargs).model_dump(mode="json", by_alias=True,
                                                  exclude={"name", "tags", "priority", "device", "time_limit_s", "seed"})


# Tables -------------------------------------------------------------------------------------


def _pct(values: np.ndarray | list[float]) -> str:
    return " / ".join(f"{100 * v:.1f}" for v in values)


def _avg(runs: Runs) -> str:
    a = 100 * np.asarray(runs.averages)
    return f"{a.mean():.1f} ± {a.std(ddof=1):.1f}" if len(a) > 1 else f"{a.mean():.1f}"


def table_commands(groups: list[tuple[str, Runs]], original: bool) -> str:
    head = ("| command (+ `--dataset mnist-5k`) | original, val % | ours, test % | ours, val % "
            "| average % | forgetting pp | train s/epoch | Fisher s | run s |")
    lines = [head, "|" + "---|" * 9]
    for i, (command, runs) in enumerate(groups):
        val = np.mean(runs.final_val, axis=0)
        fisher = f"{np.median(runs.fisher_s):.3f}" if runs.fisher_s else "–"
        orig = ORIGINAL_NUMBERS[i] if original else "–"
        lines.append(f"| `{command}` | {orig} | {_pct(runs.final)} | {_pct(val)} | {_avg(runs)} | "
                     f"{100 * runs.forgetting:.1f} | {np.median(runs.train_epoch_s):.3f} | {fisher} | "
                     f"{np.median(runs.total_s):.1f} |")
    return "\n".join(lines)


def table_sweep(rows: list[tuple[str, Runs]], what: str, frozen: bool = False) -> str:
    head = f"| {what} | task 1 / 2 / 3 % | average % | forgetting pp | right after % |"
    sep = "|---|---|---|---|---|"
    if frozen:
        head += " frozen after task 1 |"
        sep += "---|"
    lines = [head, sep]
    best = max(rows[1:], key=lambda r: np.mean(r[1].averages))[1]  # rows[0] is the baseline
    for name, runs in rows:
        mark = " **best**" if runs is best else ""
        line = (f"| {name}{mark} | {_pct(runs.final)} | {_avg(runs)} | {100 * runs.forgetting:.1f} | "
                f"{100 * runs.right_after:.1f} |")
        if frozen:
            line += f" {100 * np.mean(runs.frozen_after_1):.0f} % |" if runs.frozen_after_1 else " – |"
        lines.append(line)
    return "\n".join(lines)


def table_confirm(fine_tune: Runs, groups: list[tuple[str, str, list[tuple[float, Runs]]]]) -> str:
    """Candidates on more seeds; Δ = paired difference of average accuracy to the first
    candidate of the group (mean ± standard error over seeds)."""
    ft_forgetting = fine_tune.forgetting
    lines = [("| method | value | average % | forgetting pp | right after % | Δ average vs first, pp "
             "| forgetting ≤ ½ fine-tune's |"), "|---|---|---|---|---|---|---|",
             (f"| fine-tune | – | {_avg(fine_tune)} | {100 * ft_forgetting:.1f} | "
             f"{100 * fine_tune.right_after:.1f} | – | – |")]
    for method, est, cands in groups:
        first = np.asarray(cands[0][1].averages)
        for value, runs in cands:
            diff = 100 * (np.asarray(runs.averages) - first)
            delta = f"{diff.mean():+.2f} ± {diff.std(ddof=1) / np.sqrt(len(diff)):.2f}" if runs is not cands[0][1] else "–"
            ok = "yes" if runs.forgetting <= ft_forgetting / 2 else "no"
            lines.append(f"| {method} `{est}` | {value:g} | {_avg(runs)} | {100 * runs.forgetting:.1f} | "
                         f"{100 * runs.right_after:.1f} | {delta} | {ok} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smaller grid")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--only", nargs="+", choices=["commands", "ewc", "fim", "switch", "confirm"],
                        default=["commands", "ewc", "fim", "switch"])
    parser.add_argument("--confirm-seeds", type=int, nargs="+", default=list(range(10)),
                        help="seeds of the `confirm` section (not in the default --only)")
    parser.add_argument("--data-dir", type=Path, default=None, help="dataset folder (mnist-5k.npz)")
    parser.add_argument("--json", type=Path, default=None, help="also write every run's matrices here")
    args = parser.parse_args(argv)
    cache = args.data_dir or default_dataset_dir()
    seeds = args.seeds
    started = time.perf_counter()
    everything: list[Runs] = []
    out: list[str] = [f"seeds {seeds}; mean over seeds (average: mean ± sample std over seeds)\n"]

    def go(label: str, spec: dict) -> Runs:
        runs = run(label, spec, seeds, cache)
        everything.append(runs)
        return runs

    fine_tune = None
    if "commands" in args.only:
        groups = [(c, go(c, spec_of_command(c))) for c in ORIGINAL_COMMANDS]
        fine_tune = groups[0][1]
        out += ["## The original's five commands\n", table_commands(groups, original=True), ""]
        if not args.quick:
            seed_cmds = [c + " --fisher=seed" for c in ORIGINAL_COMMANDS[1:]]
            groups = [(c, go(c, spec_of_command(c))) for c in seed_cmds]
            out += ["## The same with the original's Fisher estimator\n", table_commands(groups, original=False), ""]
    if fine_tune is None and ("ewc" in args.only or "fim" in args.only):
        fine_tune = go("fine-tune", BASE)
    if "ewc" in args.only:
        grid = QUICK_EWC if args.quick else EWC_LAMBDAS
        for est, lambdas in grid.items():
            rows = [("fine-tune (λ = 0)", fine_tune)]
            rows += [(f"λ = {lam:g}", go(f"ewc {est} λ={lam:g}", {**BASE, "fisher": est, "ewc": {"lambda": lam}}))
                     for lam in lambdas]
            out += [f"## EWC, Fisher `{est}` (default λ {DEFAULT_EWC_LAMBDA[est]:g})\n",
                    table_sweep(rows, "λ"), ""]
    if "fim" in args.only:
        grid = QUICK_FIM if args.quick else FIM_THRESHOLDS
        for est, thresholds in grid.items():
            rows = [("fine-tune", fine_tune)]
            rows += [(f"threshold {th:g}",
                      go(f"fim {est} {th:g}", {**BASE, "fisher": est, "fim": {"threshold": th}}))
                     for th in thresholds]
            out += [f"## FIM, Fisher `{est}` (default threshold {DEFAULT_FIM_THRESHOLD[est]:g})\n",
                    table_sweep(rows, "threshold", frozen=True), ""]
    if "switch" in args.only:
        switch = {**BASE, "dataset_update": "switch"}
        lam = DEFAULT_EWC_LAMBDA["empirical"]
        rows = [("fine-tune", go("switch fine-tune", switch))]
        for value in (lam, 10_000.0) if args.quick else (lam, 1000.0, 10_000.0):
            rows.append((f"EWC empirical λ = {value:g}",
                         go(f"switch ewc {value:g}", {**switch, "ewc": {"lambda": value}})))
        out += ["## switch ({0-3}, {4-6}, {7-9}, one shared 10-way head)\n",
                table_sweep(rows, "run"), ""]
    if "confirm" in args.only:
        seeds_c = args.confirm_seeds
        ft = run("confirm fine-tune", BASE, seeds_c, cache)
        everything.append(ft)
        groups = []
        for (method, est), values in CONFIRM.items():
            cands = []
            for value in values:
                cfg = {"lambda": value} if method == "ewc" else {"threshold": value}
                runs = run(f"confirm {method} {est} {value:g}", {**BASE, "fisher": est, method: cfg}, seeds_c, cache)
                everything.append(runs)
                cands.append((value, runs))
            groups.append(("EWC λ" if method == "ewc" else "FIM threshold", est, cands))
        out += [f"## Close candidates on seeds {seeds_c}\n", table_confirm(ft, groups), ""]
    out.append(f"{sum(len(r.matrices) for r in everything)} runs ({len(everything)} configurations) in "
               f"{time.perf_counter() - started:.0f} s")
    print("\n".join(out))
    if args.json:
        args.json.write_text(json.dumps([r.as_json() for r in everything], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
