"""Science for MAS and LwF on `mnist-5k` (issue 12's targets), as Markdown tables of
mean ± std over seeds: average test accuracy and forgetting (percentage points).

    .venv/bin/python bench/science_mas_lwf.py                       # every table, seeds 0-2
    .venv/bin/python bench/science_mas_lwf.py --only mas10 --seeds 0 # one table, one seed
    .venv/bin/python bench/science_mas_lwf.py --only mas10 --grid 0.1 1 10

Setup (the brief's): mlp, 5 epochs per task, batch 256, Adam 1e-3, no augmentation.
"just trained" = the mean of the accuracy matrix's diagonal (each task right after training
it): without backward transfer no method's average accuracy exceeds it.
Tables: `mas10` (10-task permute: fine-tuning vs MAS λ), `mas3` (3-task permute), `lwf_til`
(5-task split, `heads: multi`), `lwf_cil` (5-task split, shared head), `incdet` (switch
3 tasks: EWC + LwF + IncDet against its parts). Every run goes through `train()` in this
one process.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cli.run import default_dataset_dir
from continual_core.spec import ExperimentSpec


def stream(update: str, tasks: int, **extra) -> dict:
    return {"dataset": "mnist-5k", "dataset_update": update, "splits": tasks,
            "epochs": 5 * tasks, **extra}  # fmt: skip


def forgetting(matrix: np.ndarray) -> float:
    t = len(matrix)
    return float(np.mean([matrix[:, j].max() - matrix[t - 1, j] for j in range(t - 1)]))


def measure(
    base: dict, methods: dict, seeds: list[int]
) -> tuple[list[float], list[float], list[float], float]:
    from continual_core.trainer import train

    accs, forgets, diags, t0 = [], [], [], time.perf_counter()
    for seed in seeds:
        result = train(
            ExperimentSpec(**base, **methods, seed=seed), dataset_cache=default_dataset_dir()
        )
        matrix = np.array(result["accuracy_matrix"])
        accs.append(100 * float(matrix[-1].mean()))
        forgets.append(100 * forgetting(matrix))
        diags.append(100 * float(np.diag(matrix).mean()))
    return accs, forgets, diags, (time.perf_counter() - t0) / len(seeds)


def table(title: str, base: dict, rows: list[tuple[str, dict]], seeds: list[int]) -> None:
    print(f"\n### {title}  (seeds {', '.join(map(str, seeds))})\n")
    print(
        "| method | average accuracy % | forgetting pp | just trained % | s/run |\n|---|---|---|---|---|"
    )
    for label, methods in rows:
        accs, forgets, diags, secs = measure(base, methods, seeds)
        print(f"| {label} | {np.mean(accs):.1f} ± {np.std(accs):.1f} | "
              f"{np.mean(forgets):.1f} ± {np.std(forgets):.1f} | {np.mean(diags):.1f} ± {np.std(diags):.1f} | {secs:.1f} |", flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--grid", nargs="*", type=float, default=None, help="λ (mas) or α (lwf)")
    parser.add_argument("--no-baseline", action="store_true")
    args = parser.parse_args()
    only = set(args.only or ["mas10", "mas3", "lwf_til", "lwf_cil", "incdet"])
    base_rows = [] if args.no_baseline else [("fine-tuning", {})]
    joint = [] if args.no_baseline else [("joint (upper bound)", {"joint": True})]
    mas_rows = [(f"MAS λ={g:g}", {"mas": {"lambda": g}}) for g in args.grid or []] or [
        ("MAS (default λ = 2/T²)", {"mas": {}})
    ]
    lwf_rows = [(f"LwF α={g:g}", {"lwf": {"alpha": g}}) for g in args.grid or []] or [
        ("LwF (default α = 1, T = 2)", {"lwf": {}})
    ]
    if "mas10" in only:
        table(
            "10-task permute: MAS",
            stream("permute", 10),
            base_rows + mas_rows,
            args.seeds,
        )
    if "mas3" in only:
        table(
            "3-task permute: MAS",
            stream("permute", 3),
            base_rows + mas_rows,
            args.seeds,
        )
    if "lwf_til" in only:
        table(
            "5-task split, task-IL (heads: multi): LwF",
            stream("switch", 5, heads="multi"),
            base_rows + lwf_rows + joint,
            args.seeds,
        )
    if "lwf_cil" in only:
        table(
            "5-task split, class-IL (shared head): LwF",
            stream("switch", 5),
            base_rows + lwf_rows + joint,
            args.seeds,
        )
    if "incdet" in only:
        table("3-task switch: IncDet's full method and its parts", stream("switch", 3), base_rows + [
            ("EWC", {"ewc": {}}), ("LwF", {"lwf": {}}), ("EWC + IncDet", {"ewc": {}, "incdet": {}}),
            ("EWC + LwF + IncDet", {"ewc": {}, "lwf": {}, "incdet": {}}),
        ], args.seeds)  # fmt: skip


if __name__ == "__main__":
    main()
