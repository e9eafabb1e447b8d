"""Science of the scenarios (issue 12) on `mnist-5k`: split MNIST task-IL (a head per task)
against class-IL (one shared head), and joint training (the upper bound) on each, plus the
10-task permuted stream (domain-IL). Each cell: mean ± std over seeds (default 0-2) of the
final average accuracy, in %.

    .venv/bin/python bench/science_scenarios.py                  # every table (~6 minutes on 2 cores)
    .venv/bin/python bench/science_scenarios.py --only split     # split MNIST only (~2 minutes)
    .venv/bin/python bench/science_scenarios.py --only extra     # width 400-400, permute task-IL
    .venv/bin/python bench/science_scenarios.py --json out.json

Setup (the issue's): mlp 100-100, 5 epochs per task, batch 256, Adam 1e-3, one Adam across
tasks, no augmentation; split = `switch`, 5 tasks of 2 digits; permute = 10 tasks.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cli.run import default_dataset_dir
from continual_core.spec import ExperimentSpec

SPLIT = {"dataset": "mnist-5k", "dataset_update": "switch", "splits": 5, "epochs": 25}
PERMUTE = {"dataset": "mnist-5k", "dataset_update": "permute", "splits": 10, "epochs": 50}

#: table → (row label, spec) in order.
TABLES: dict[str, list[tuple[str, dict]]] = {
    "split": [
        ("task-IL fine-tune", {**SPLIT, "heads": "multi"}),
        ("task-IL EWC (defaults)", {**SPLIT, "heads": "multi", "ewc": {}}),
        ("task-IL joint", {**SPLIT, "heads": "multi", "joint": True}),
        ("class-IL fine-tune", SPLIT),
        ("class-IL joint", {**SPLIT, "joint": True}),
    ],
    "permute": [
        ("domain-IL fine-tune", PERMUTE),
        ("domain-IL joint", {**PERMUTE, "joint": True}),
    ],
    "extra": [
        ("task-IL fine-tune, mlp 400-400", {**SPLIT, "heads": "multi", "hidden": [400, 400]}),
        ("task-IL joint, mlp 400-400", {**SPLIT, "heads": "multi", "hidden": [400, 400], "joint": True}),
        ("permute, a head per task: fine-tune", {**PERMUTE, "heads": "multi"}),
    ],
}


def run(spec: dict, seeds: list[int], cache: Path) -> dict:
    from continual_core.trainer import train

    averages, forgetting, seconds = [], [], []
    for seed in seeds:
        t0 = time.perf_counter()
        result = train(ExperimentSpec(**spec, seed=seed), dataset_cache=cache)
        seconds.append(time.perf_counter() - t0)
        averages.append(100 * result["summary"]["average_accuracy"])
        forgetting.append(100 * (result["summary"]["forgetting"] or 0.0))
    return {"scenario": result["scenario"], "average": averages, "forgetting": forgetting, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--only", choices=sorted(TABLES), action="append")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    cache = default_dataset_dir()
    out: dict[str, dict] = {}
    for table in args.only or list(TABLES):
        print(f"\n| {table} | scenario | average accuracy % | forgetting pp | s per run |\n|---|---|---|---|---|")
        for label, spec in TABLES[table]:
            r = out[label] = {**run(spec, args.seeds, cache), "spec": spec}
            print(f"| {label} | {r['scenario']} | {np.mean(r['average']):.1f} ± {np.std(r['average'], ddof=1):.1f} "
                  f"| {np.mean(r['forgetting']):.1f} ± {np.std(r['forgetting'], ddof=1):.1f} "
                  f"| {np.mean(r['seconds']):.0f} |", flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
