"""Science of experience replay and A-GEM on `mnist-5k`, per scenario, as Markdown tables.

    .venv/bin/python bench/science_replay.py                       # every scenario, seeds 0 1 2
    .venv/bin/python bench/science_replay.py --only class-il --seeds 0 1 2 --json out.json

Setup (issue 12): mlp, 5 epochs per task, batch 256, Adam 1e-3, one Adam across tasks.
Scenarios: class-IL (`switch`, 5 tasks, one shared head), task-IL (`switch`, 5 tasks,
`heads: multi`), domain-IL (`permute`, 10 tasks). Cells: mean ± std over the seeds of the
final average test accuracy (%), forgetting (pp: mean over earlier tasks of best − final)
and the lowest accuracy of a task right after training it; the cost columns are the mean
training epoch (s) and the mean end of task (s, `timings.fisher_s`: filling the memory).
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

from continual_core.spec import ExperimentSpec

SCENARIOS = {
    "class-il": {"dataset_update": "switch", "splits": 5, "epochs": 25},
    "task-il": {"dataset_update": "switch", "splits": 5, "epochs": 25, "heads": "multi"},
    "domain-il": {"dataset_update": "permute", "splits": 10, "epochs": 50},
}

CONDITIONS = {
    "fine-tune": {},
    "joint": {"joint": True},
    "replay (500, reservoir)": {"replay": {}},
    "replay (500, balanced)": {"replay": {"strategy": "balanced"}},
    "replay (500, ratio 1)": {"replay": {"ratio": 1}},
    "EWC + replay (500)": {"ewc": {}, "replay": {}},
    "A-GEM (500, reservoir)": {"agem": {}},
    "A-GEM (500, balanced)": {"agem": {"strategy": "balanced"}},
}


def forgetting(m: np.ndarray) -> float:
    return float(np.mean([m[:, j].max() - m[-1, j] for j in range(len(m) - 1)]))


def run(scenario: str, name: str, seeds: list[int], cache: Path) -> dict:
    from continual_core.trainer import train

    body = {"dataset": "mnist-5k", **SCENARIOS[scenario], **CONDITIONS[name]}
    rows = []
    for seed in seeds:
        t0 = time.perf_counter()
        r = train(ExperimentSpec(**body, seed=seed), dataset_cache=cache)
        m = np.asarray(r["accuracy_matrix"])
        rows.append({
            "average": m[-1].mean(), "forgetting": forgetting(m), "right_after": np.diag(m).min(),
            "epoch_s": np.mean(r["timings"]["train_epoch_s"]),
            "end_s": np.mean(r["timings"]["fisher_s"]) if r["timings"]["fisher_s"] else 0.0,
            "total_s": time.perf_counter() - t0, "last_row": m[-1].tolist(),
        })  # fmt: skip
    return {"scenario": scenario, "condition": name, "spec": body, "seeds": seeds, "runs": rows}


def cell(values: list[float], scale: float = 100.0) -> str:
    v = np.asarray(values) * scale
    return f"{v.mean():.1f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.1f}"


def table(results: list[dict]) -> str:
    lines = ["| scenario | condition | average % | forgetting pp | right after % (min) | epoch s | task end s |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for res in results:
        rs = res["runs"]
        lines.append(
            f"| {res['scenario']} | {res['condition']} | {cell([r['average'] for r in rs])} | "
            f"{cell([r['forgetting'] for r in rs])} | {cell([r['right_after'] for r in rs])} | "
            f"{np.mean([r['epoch_s'] for r in rs]):.3f} | {np.mean([r['end_s'] for r in rs]):.3f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=list(SCENARIOS), default=list(SCENARIOS))
    parser.add_argument("--conditions", nargs="*", choices=list(CONDITIONS), default=list(CONDITIONS))
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--data-dir", type=Path, default=Path("data/datasets"))
    args = parser.parse_args()
    results = []
    for scenario in args.only:
        for name in args.conditions:
            res = run(scenario, name, args.seeds, args.data_dir)
            results.append(res)
            print(table([res]).splitlines()[-1], flush=True)
            if args.json:
                args.json.write_text(json.dumps(results, indent=1, default=float))
    print()
    print(table(results))


if __name__ == "__main__":
    main()
