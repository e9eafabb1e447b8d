"""Science on `mnist-5k`, every figure of the README's "Results": the original's five commands,
the λ / threshold scale of each Fisher estimator, what EWC does on `switch`, and (issue 12) every
method × scenario in van de Ven & Tolias 2019's layout, the variants and target sweeps behind
the README's statements, and each method's cost — as Markdown tables, each cell a mean over seeds.

    .venv/bin/python bench/science.py            # the original's commands + λ/threshold grids, seeds 0 1 2
    .venv/bin/python bench/science.py --quick    # a smaller grid (about 3 minutes)
    .venv/bin/python bench/science.py --only confirm  # close candidates on seeds 0-9 (~9 minutes)
    .venv/bin/python bench/science.py --only table     # methods × domain/task/class-IL (README's one table)
    .venv/bin/python bench/science.py --only table --methods fine-tune lwf --scenarios task-IL
    .venv/bin/python bench/science.py --only scenarios # variants: 3-task permute, EWC + replay, IncDet, ...
    .venv/bin/python bench/science.py --only sweeps --sweeps lwf-til mas10   # the target sweeps
    .venv/bin/python bench/science.py --only cost --seeds 0 1 2  # s per epoch / task end of each method
    .venv/bin/python bench/science.py --only ewc --seeds 0 1 2 3 4 --json out.json

Every run goes through `continual_core.trainer.train` in this one process (TensorFlow is
imported once). Setup: mlp 100-100, 5 epochs per task, batch 256, Adam 1e-3, no augmentation,
one Adam across tasks; the original's commands and grids use 3 tasks (15 epochs), `table`
uses 10-task permute (domain-IL) and 5-task split = `switch` with `heads: multi` (task-IL) or
one shared head (class-IL). Numbers are final TEST accuracies (fractions shown as %), except
the "val" column of the first table (the original printed validation accuracy); ± is the
sample std over seeds. Forgetting = mean over the earlier tasks of (best accuracy the task
ever had − its final accuracy), in percentage points. "Right after" = the lowest, over tasks,
of a task's accuracy right after training it (how well the network still learns new tasks);
"just trained" = the mean of those (no method without backward transfer averages above it).
Cost: median training epoch (s) and median end of task (`timings.fisher_s`: Fisher, Ω, memory
or frozen copy), per run.
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
    epoch_median_s: list[float] = field(default_factory=list)
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

    @property
    def just_trained(self) -> float:
        """Mean over seeds and tasks of a task's accuracy right after training it (the matrix's
        diagonal): without backward transfer no method's average exceeds it."""
        return float(np.mean([np.diag(m).mean() for m in self.matrices]))

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
        runs.epoch_median_s.append(float(np.median(timings["train_epoch_s"])))
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


# Issue 12: methods × scenarios (van de Ven & Tolias 2019's layout) ---------------------------

#: The three scenarios of the README's one table; 5 epochs per task throughout.
SCENARIOS = {
    "domain-IL": {"dataset": "mnist-5k", "dataset_update": "permute", "splits": 10, "epochs": 50},
    "task-IL": {"dataset": "mnist-5k", "dataset_update": "switch", "splits": 5, "epochs": 25, "heads": "multi"},
    "class-IL": {"dataset": "mnist-5k", "dataset_update": "switch", "splits": 5, "epochs": 25},
}
#: The table's rows: label → the spec's method keys (`{}` = the documented defaults). "EWC summed"
#: passes λ explicitly (γ = 1, the original's sum of penalties) at the default's scale.
METHODS: dict[str, tuple[str, dict]] = {
    "fine-tune": ("fine-tune", {}),
    "joint": ("joint", {"joint": True}),
    "ewc": ("EWC (online, default)", {"ewc": {}}),
    "ewc-sum": ("EWC summed (explicit λ)", {"ewc": {"lambda": 100.0}}),
    "si": ("SI", {"si": {}}),
    "mas": ("MAS", {"mas": {}}),
    "fim": ("FIM", {"fim": {}}),
    "lwf": ("LwF", {"lwf": {}}),
    "replay": ("replay 500", {"replay": {}}),
    "agem": ("A-GEM 500", {"agem": {}}),
}
#: van de Ven & Tolias 2019 (full MNIST, MLP), only the figures quoted in docs/original.md and
#: the issue: split MNIST task-IL / class-IL, permuted MNIST (10 tasks) domain-IL.
PUBLISHED: dict[tuple[str, str], str] = {
    ("fine-tune", "domain-IL"): "78.5", ("fine-tune", "task-IL"): "87.2", ("fine-tune", "class-IL"): "19.9",
    ("ewc", "domain-IL"): "94.4", ("ewc", "task-IL"): "99.1", ("ewc", "class-IL"): "20.0",
    ("ewc-sum", "domain-IL"): "94.3", ("ewc-sum", "task-IL"): "98.6", ("ewc-sum", "class-IL"): "20.0",
}


def method_spec(key: str, scenario: str) -> dict:
    """The scenario's stream with the row's method; "EWC summed" takes λ 1000 with a head per
    task (the default's scale there) and 100 otherwise."""
    methods = METHODS[key][1]
    if key == "ewc-sum" and SCENARIOS[scenario].get("heads") == "multi":
        methods = {"ewc": {"lambda": 1000.0}}
    return {**SCENARIOS[scenario], **methods}


def scale_of(key: str, scenario: str) -> str:
    """The λ / c / α / ratio the row ran with, as the validated spec resolved it."""
    spec = ExperimentSpec.model_validate(method_spec(key, scenario)).model_dump(mode="json", by_alias=True)
    if spec["ewc"]:
        return f"λ {spec['ewc']['lambda']:g}, γ {spec['ewc']['gamma']:g}"
    if spec["si"]:
        return f"c {spec['si']['c']:g}"
    if spec["mas"]:
        return f"λ {spec['mas']['lambda']:g}"
    if spec["fim"]:
        return f"threshold {spec['fim']['threshold']:g} (growth {spec['fim']['growth']:g})"
    if spec["lwf"]:
        return f"α {spec['lwf']['alpha']:g}, T {spec['lwf']['temperature']:g}"
    if spec["replay"]:
        return f"buffer {spec['replay']['buffer']}, ratio = tasks finished"
    if spec["agem"]:
        return f"buffer {spec['agem']['buffer']}"
    return "–"


def _pm(values: list[float], scale: float = 100.0) -> str:
    v = scale * np.asarray(values)
    return f"{v.mean():.1f} ± {v.std(ddof=1):.1f}" if len(v) > 1 else f"{v.mean():.1f}"


def _forgetting_values(runs: Runs) -> list[float]:
    return [forgetting(m) for m in runs.matrices]


def table_methods(results: dict[tuple[str, str], Runs], keys: list[str], scenarios: list[str]) -> str:
    """The van de Ven-style table: methods × scenarios, ours (mean ± sample std) beside the
    published full-MNIST figure, the scale each ran with, and the cost on the first scenario."""
    head = "| method |"
    for sc in scenarios:
        head += f" {sc} ours % | {sc} published % |"
    head += " scale (domain / task-IL) | s / epoch | s / task end |"
    lines = [head, "|" + "---|" * (1 + 2 * len(scenarios) + 3)]
    for key in keys:
        line = f"| {METHODS[key][0]} |"
        for sc in scenarios:
            runs = results.get((key, sc))
            line += f" {_avg(runs) if runs else '–'} | {PUBLISHED.get((key, sc), '–')} |"
        first = next((results[(key, sc)] for sc in scenarios if (key, sc) in results), None)
        scales = " / ".join(dict.fromkeys(scale_of(key, sc) for sc in ("domain-IL", "task-IL")))
        epoch = f"{np.median(first.epoch_median_s):.3f}" if first else "–"
        end = f"{np.median(first.fisher_s):.3f}" if first and first.fisher_s else "–"
        lines.append(line + f" {scales} | {epoch} | {end} |")
    return "\n".join(lines)


def table_rows(rows: list[tuple[str, Runs]]) -> str:
    """One line per configuration: average and forgetting (mean ± sample std over seeds), the
    lowest and the mean accuracy of a task right after training it, and the cost."""
    lines = ["| run | average % | forgetting pp | right after, min % | just trained, mean % | s / epoch | s / task end |",
             "|---|---|---|---|---|---|---|"]
    for name, runs in rows:
        end = f"{np.median(runs.fisher_s):.3f}" if runs.fisher_s else "–"
        lines.append(f"| {name} | {_avg(runs)} | {_pm(_forgetting_values(runs))} | {100 * runs.right_after:.1f} | "
                     f"{100 * runs.just_trained:.1f} | {np.median(runs.epoch_median_s):.3f} | {end} |")
    return "\n".join(lines)


def _stream(update: str, tasks: int, **extra) -> dict:
    return {"dataset": "mnist-5k", "dataset_update": update, "splits": tasks, "epochs": 5 * tasks, **extra}


PERMUTE3, PERMUTE10 = _stream("permute", 3), _stream("permute", 10)
SPLIT_TIL, SPLIT_CIL, SWITCH3 = _stream("switch", 5, heads="multi"), _stream("switch", 5), _stream("switch", 3)

#: `--only scenarios`: the measurements behind the README's statements, beyond the one table.
SCENARIO_TABLES: dict[str, tuple[str, list[tuple[str, dict]]]] = {
    "permute3": ("3-task permute: every regulariser at its defaults", [
        ("fine-tune", PERMUTE3), ("EWC (online, default)", {**PERMUTE3, "ewc": {}}),
        ("EWC summed λ 100", {**PERMUTE3, "ewc": {"lambda": 100.0}}), ("SI", {**PERMUTE3, "si": {}}),
        ("FIM (growing threshold)", {**PERMUTE3, "fim": {}}),
        ("FIM fixed 3e-4 (the old default)", {**PERMUTE3, "fim": {"growth": 0.0}}),
        ("MAS", {**PERMUTE3, "mas": {}})]),
    "domain": ("10-task permute (domain-IL): variants", [
        ("replay 500 balanced", {**PERMUTE10, "replay": {"strategy": "balanced"}}),
        ("replay 500 ratio 1", {**PERMUTE10, "replay": {"ratio": 1}}),
        ("EWC + replay", {**PERMUTE10, "ewc": {}, "replay": {}}),
        ("EWC + replay ratio 1", {**PERMUTE10, "ewc": {}, "replay": {"ratio": 1}}),
        ("a head per task (multi), fine-tune", {**PERMUTE10, "heads": "multi"}),
        ("FIM fixed 3e-4 (the old default)", {**PERMUTE10, "fim": {"growth": 0.0}})]),
    "task": ("5-task split, task-IL (`heads: multi`): variants", [
        ("EWC + replay", {**SPLIT_TIL, "ewc": {}, "replay": {}}),
        ("fine-tune, mlp 400-400", {**SPLIT_TIL, "hidden": [400, 400]}),
        ("joint, mlp 400-400", {**SPLIT_TIL, "hidden": [400, 400], "joint": True})]),
    "class": ("5-task split, class-IL (shared head): variants", [
        ("replay 500 balanced", {**SPLIT_CIL, "replay": {"strategy": "balanced"}}),
        ("EWC + replay", {**SPLIT_CIL, "ewc": {}, "replay": {}}),
        ("A-GEM 500 balanced", {**SPLIT_CIL, "agem": {"strategy": "balanced"}})]),
    "incdet": ("3-task switch: IncDet's full method (EWC + LwF + IncDet) and its parts", [
        ("fine-tune", SWITCH3), ("EWC", {**SWITCH3, "ewc": {}}), ("LwF", {**SWITCH3, "lwf": {}}),
        ("EWC + IncDet", {**SWITCH3, "ewc": {}, "incdet": {}}),
        ("EWC + LwF + IncDet", {**SWITCH3, "ewc": {}, "lwf": {}, "incdet": {}})]),
}

#: `--only sweeps`: the sweeps behind each target the README reports as missed or scaled.
SWEEPS: dict[str, tuple[str, list[tuple[str, dict]]]] = {
    "lwf-til": ("task-IL split: LwF α and T (target: fine-tune + 3 points)", [
        ("fine-tune", SPLIT_TIL), ("joint", {**SPLIT_TIL, "joint": True})] + [
        (f"LwF α {a:g}, T {t:g}", {**SPLIT_TIL, "lwf": {"alpha": a, "temperature": t}})
        for a, t in [(0.3, 2), (1, 2), (3, 2), (10, 2), (1, 1), (1, 4)]]),
    "ewc-til": ("task-IL split: EWC λ and γ (target: fine-tune + 3 points)", [("fine-tune", SPLIT_TIL)] + [
        (f"EWC summed λ {lam:g}", {**SPLIT_TIL, "ewc": {"lambda": lam}}) for lam in (1e3, 1e4, 1e5)] + [
        (f"EWC online γ 0.9, λ {lam:g}", {**SPLIT_TIL, "ewc": {"lambda": lam, "gamma": 0.9}}) for lam in (1e3, 3e3)]),
    "mas10": ("10-task permute: MAS λ (default 2/T² = 0.02)", [("fine-tune", PERMUTE10)] + [
        (f"MAS λ {lam:g}", {**PERMUTE10, "mas": {"lambda": lam}}) for lam in (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 1)]),
    "replay-ratio": ("5-task split, class-IL: replay ratio (default = tasks finished)", [("fine-tune", SPLIT_CIL), (
        "replay 500, default ratio", {**SPLIT_CIL, "replay": {}})] + [
        (f"replay 500, ratio {r:g}", {**SPLIT_CIL, "replay": {"ratio": r}}) for r in (0.25, 0.5, 1, 2, 4)]),
    "ewc-gamma": ("10-task permute: EWC online γ, summed and mean forms", [("fine-tune", PERMUTE10)] + [
        (f"EWC online γ {g:g}, λ 100", {**PERMUTE10, "ewc": {"lambda": 100.0, "gamma": g}}) for g in (0.9, 0.7, 0.5)] + [
        ("EWC summed λ 100", {**PERMUTE10, "ewc": {"lambda": 100.0}})] + [
        (f"EWC mean λ {lam:g}", {**PERMUTE10, "ewc": {"lambda": lam, "normalize": True}}) for lam in (100.0, 300.0)]),
    "si-c": ("10-task permute: SI c, summed and mean Ω", [("fine-tune", PERMUTE10)] + [
        (f"SI sum c {c:g}", {**PERMUTE10, "si": {"c": c, "normalize": False}}) for c in (0.3, 1.0, 3.0)] + [
        (f"SI mean c {c:g}", {**PERMUTE10, "si": {"c": c, "normalize": True}}) for c in (1.0, 3.0, 10.0)]),
}

#: `--only cost`: every method once on the 3-task permute stream (seed 0 unless --seeds).
COST: list[tuple[str, dict]] = [(label, {**PERMUTE3, **methods}) for label, methods in METHODS.values()] + [
    ("MAS + EWC + LwF + IncDet", {**PERMUTE3, "mas": {}, "ewc": {}, "lwf": {}, "incdet": {}}),
    ("fine-tune, mlp 400-400", {**PERMUTE3, "hidden": [400, 400]})]


def table_cost(rows: list[tuple[str, Runs]]) -> str:
    base = np.median(rows[0][1].epoch_median_s)
    lines = ["| method | median s / epoch | × fine-tune | median s / task end | run s |", "|---|---|---|---|---|"]
    for name, runs in rows:
        epoch = np.median(runs.epoch_median_s)
        end = f"{np.median(runs.fisher_s):.3f}" if runs.fisher_s else "–"
        lines.append(f"| {name} | {epoch:.3f} | {epoch / base:.2f} | {end} | {np.median(runs.total_s):.1f} |")
    return "\n".join(lines)


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
    parser.add_argument("--only", nargs="+",
                        choices=["commands", "ewc", "fim", "switch", "confirm", "table", "scenarios", "sweeps", "cost"],
                        default=["commands", "ewc", "fim", "switch"],
                        help="sections; `table` = methods × scenarios (the README's one table), `scenarios` = "
                             "variants behind its statements, `sweeps` = the target sweeps, `cost` = s per "
                             "epoch / task end of every method")
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS),
                        help="rows of `--only table` (fine-tune, joint, online EWC, summed EWC, ...)")
    parser.add_argument("--scenarios", nargs="+", choices=list(SCENARIOS), default=list(SCENARIOS),
                        help="columns of `--only table`")
    parser.add_argument("--sweeps", nargs="+", choices=list(SWEEPS), default=list(SWEEPS),
                        help="which of `--only sweeps`")
    parser.add_argument("--tables", nargs="+", choices=list(SCENARIO_TABLES), default=list(SCENARIO_TABLES),
                        help="which of `--only scenarios`")
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
    if "table" in args.only:
        results = {}
        for sc in args.scenarios:
            for key in args.methods:
                results[(key, sc)] = go(f"{sc} {METHODS[key][0]}", method_spec(key, sc))
        out += ["## Methods × scenarios (van de Ven & Tolias 2019's layout; published: full MNIST)\n",
                table_methods(results, args.methods, args.scenarios),
                "\nCost columns: the first scenario's runs (median over seeds).", ""]
    if "scenarios" in args.only:
        for key in args.tables:
            title, rows = SCENARIO_TABLES[key]
            out += [f"## {title}\n", table_rows([(name, go(f"{key} {name}", spec)) for name, spec in rows]), ""]
    if "sweeps" in args.only:
        for key in args.sweeps:
            title, rows = SWEEPS[key]
            out += [f"## {title}\n", table_rows([(name, go(f"{key} {name}", spec)) for name, spec in rows]), ""]
    if "cost" in args.only:
        rows = [(name, go(f"cost {name}", spec)) for name, spec in COST]
        out += [f"## Cost of each method (3-task permute, seeds {seeds})\n", table_cost(rows), ""]
    out.append(f"{sum(len(r.matrices) for r in everything)} runs ({len(everything)} configurations) in "
               f"{time.perf_counter() - started:.0f} s")
    print("\n".join(out))
    if args.json:
        args.json.write_text(json.dumps([r.as_json() for r in everything], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
