"""Science of the regularisation methods (EWC's defaults, online EWC, SI, FIM) on `mnist-5k`
permute streams of 3 and 10 tasks: average final accuracy and forgetting, mean ± std over
seeds, as a Markdown table.

    .venv/bin/python bench/science_reg.py --tasks 10 --only fine-tune ewc si --seeds 0 1 2
    .venv/bin/python bench/science_reg.py --tasks 3 --jsonl runs.jsonl

Setup as bench/science.py: mlp, 5 epochs per task, batch 256, Adam 1e-3, no augmentation.
Each run is appended to `--jsonl` as soon as it ends (a long sweep can be read mid-way).
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

#: Condition name → the spec's method keys (the documented defaults are `{}`).
CONDITIONS: dict[str, dict] = {
    "fine-tune": {},
    "ewc": {"ewc": {}},
    "ewc-sum-100": {"ewc": {"lambda": 100.0}},
    "ewc-sum-10": {"ewc": {"lambda": 10.0}},
    "ewc-mean-100": {"ewc": {"normalize": True}},
    "ewc-mean-300": {"ewc": {"lambda": 300.0, "normalize": True}},
    "ewc-mean-30": {"ewc": {"lambda": 30.0, "normalize": True}},
    "ewc-mean-1000": {"ewc": {"lambda": 1000.0, "normalize": True}},
    "online-0.9": {"ewc": {"gamma": 0.9}},
    "online-0.7": {"ewc": {"gamma": 0.7}},
    "online-0.5": {"ewc": {"gamma": 0.5}},
    "si": {"si": {}},
    "si-0.1": {"si": {"c": 0.1}},
    "si-1": {"si": {"c": 1.0}},
    "si-10": {"si": {"c": 10.0}},
    "si-3": {"si": {"c": 3.0}},
    "si-0.3": {"si": {"c": 0.3}},
    "si-mean-1": {"si": {"c": 1.0, "normalize": True}},
    "si-mean-3": {"si": {"c": 3.0, "normalize": True}},
    "fim": {"fim": {}},
    "ewc-sum-1e3": {"ewc": {"lambda": 1e3}},
    "ewc-sum-1e4": {"ewc": {"lambda": 1e4}},
    "ewc-sum-1e5": {"ewc": {"lambda": 1e5}},
    "online-0.9-1e3": {"ewc": {"lambda": 1e3, "gamma": 0.9}},
    "online-0.9-3e3": {"ewc": {"lambda": 3e3, "gamma": 0.9}},
    "si-mean-10": {"si": {"c": 10.0}},
    "si-mean-30": {"si": {"c": 30.0}},
    "si-mean-300": {"si": {"c": 300.0}},
    "fim-1e-3": {"fim": {"threshold": 1e-3}},
    "fim-3e-3": {"fim": {"threshold": 3e-3}},
    "fim-fixed": {"fim": {"growth": 0.0}},
    "fim-growth-2": {"fim": {"growth": 2.0}},
}


def forgetting(matrix: np.ndarray) -> float:
    """Mean over tasks j < T of (best accuracy task j ever had − its final accuracy)."""
    t = len(matrix)
    return float(np.mean([matrix[:, j].max() - matrix[t - 1, j] for j in range(t - 1)]))


def run(name: str, tasks: int, seed: int, epochs_per_task: int = 5, dataset: str = "mnist-5k",
        update: str = "permute", heads: dict | None = None) -> dict:
    from continual_core.trainer import train

    spec = ExperimentSpec(dataset=dataset, dataset_update=update, splits=tasks,
                          epochs=epochs_per_task * tasks, seed=seed, **(heads or {}),
                          **CONDITIONS[name])
    t0 = time.perf_counter()
    result = train(spec, dataset_cache=default_dataset_dir())
    m = np.asarray(result["accuracy_matrix"])
    return {"name": name, "tasks": tasks, "seed": seed, "average": float(m[-1].mean()),
            "forgetting": forgetting(m), "right_after": float(np.diag(m).min()),
            "spec": result["spec"], "s": time.perf_counter() - t0,
            "epoch_s": float(np.mean(result["timings"]["train_epoch_s"])),
            "task_end_s": float(np.mean(result["timings"]["fisher_s"] or [0.0]))}


def table(rows: list[dict]) -> str:
    out = ["| condition | tasks | average accuracy % | forgetting pp | min right after % |",
           "|---|---|---|---|---|"]
    keys = dict.fromkeys((r["name"], r["tasks"]) for r in rows)
    for name, tasks in keys:
        rs = [r for r in rows if r["name"] == name and r["tasks"] == tasks]
        avg = 100 * np.array([r["average"] for r in rs])
        fgt = 100 * np.array([r["forgetting"] for r in rs])
        ra = 100 * min(r["right_after"] for r in rs)
        out.append(f"| {name} | {tasks} | {avg.mean():.1f} ± {avg.std():.1f} | "
                   f"{fgt.mean():.1f} ± {fgt.std():.1f} | {ra:.1f} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, nargs="+", default=[10, 3])
    ap.add_argument("--only", nargs="+", choices=list(CONDITIONS), default=list(CONDITIONS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs-per-task", type=int, default=5)
    ap.add_argument("--dataset", default="mnist-5k")
    ap.add_argument("--dataset-update", default="permute", help="permute, or switch (split)")
    ap.add_argument("--heads", default=None, help="multi: one output head per task (task-IL)")
    ap.add_argument("--jsonl", type=Path, default=None)
    ap.add_argument("--table", type=Path, nargs="*", default=None,
                    help="only print the table of these --jsonl files")
    args = ap.parse_args()
    if args.table is not None:
        rows = [json.loads(line) for p in args.table for line in p.read_text().splitlines()]
        print(table(rows))
        return
    rows = []
    heads = {"heads": args.heads} if args.heads else None
    for tasks in args.tasks:
        for name in args.only:
            for seed in args.seeds:
                rows.append(row := run(name, tasks, seed, args.epochs_per_task, args.dataset,
                                         args.dataset_update, heads))
                print(f"{name} tasks={tasks} seed={seed}: {100 * row['average']:.1f} % "
                      f"({row['s']:.0f} s)", flush=True)
                if args.jsonl:
                    with args.jsonl.open("a") as f:
                        f.write(json.dumps(row) + "\n")
    print(table(rows))


if __name__ == "__main__":
    main()
