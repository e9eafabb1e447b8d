"""What a warm job spends outside its training epochs, lever by lever, in one process.

The README's experiment (mnist-5k, 3-task permute, 15 epochs, EWC) with a checkpoint folder,
on a `LearnerCache` already holding its graph (two warm-up jobs), as a worker runs it. Per
job: total wall time of `train()` less the time inside `Learner.train_epoch`. The levers of
`continual_core.tasks` / `continual_core.checkpoint` are switched off by putting back what
they replaced (the fancy-index permutation, the checkpoint written on the training thread,
no stream kept), interleaved round by round so that a drifting load hits all alike:

- seed sweep (a new seed per job, as `bench/sweep_throughput.py`): old; + np.take;
  + checkpoints behind the next task (the stream cache cannot hit: the seed decides the
  train/val split and the permutations);
- λ sweep at one seed: everything new, the stream cache off vs on.

    .venv/bin/python bench/warm_job_overhead.py [--rounds 10]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np

from continual_core import checkpoint, tasks, trainer
from continual_core.compiled import LearnerCache
from continual_core.learner import Learner
from continual_core.spec import ExperimentSpec
from tests.harness.experiments import README_EXAMPLE

NEW_PERMUTE, NEW_SUBMIT, WORKER_STREAMS = tasks._permute, checkpoint.CheckpointWriter.submit, tasks.worker_streams
NEVER_KEPT = tasks.StreamCache(max_bytes=0)


def old_permute(x: np.ndarray, perm: np.ndarray | None) -> np.ndarray:
    """The permutation as it was: fancy indexing of the columns."""
    if perm is None:
        return x
    flat = x.reshape(len(x), -1)
    return np.ascontiguousarray(flat[:, perm].reshape(x.shape))


def sync_submit(self: checkpoint.CheckpointWriter, folder: Path, task: int, state: Any, history: dict) -> None:
    """The checkpoint as it was: written on the training thread."""
    self.join()
    checkpoint.save_checkpoint(folder, task, state, history)


def configure(take: bool, background: bool, keep: bool) -> None:
    tasks._permute = NEW_PERMUTE if take else old_permute
    checkpoint.CheckpointWriter.submit = NEW_SUBMIT if background else sync_submit
    trainer.worker_streams = WORKER_STREAMS if keep else (lambda: NEVER_KEPT)


EPOCHS = [0.0]
_TRAIN_EPOCH = Learner.train_epoch


def _timed_epoch(self: Learner, *args: Any, **kwargs: Any) -> float:
    started = time.perf_counter()
    try:
        return _TRAIN_EPOCH(self, *args, **kwargs)
    finally:
        EPOCHS[0] += time.perf_counter() - started


def job(learners: LearnerCache, datasets: Path, seed: int, lam: float = 100.0) -> tuple[float, list]:
    """(seconds outside the epochs, accuracy matrix) of one job."""
    spec = ExperimentSpec.model_validate({**README_EXAMPLE, "seed": seed, "ewc": {"lambda": lam}})
    EPOCHS[0] = 0.0
    with tempfile.TemporaryDirectory(prefix="ewc-warm-job-") as folder:
        started = time.perf_counter()
        result = trainer.train(spec, dataset_cache=datasets, checkpoint_dir=Path(folder), learners=learners)
        total = time.perf_counter() - started
    return total - EPOCHS[0], result["accuracy_matrix"]


SEED_SWEEP = {
    "seed sweep: old (fancy index, checkpoint on the training thread)": (False, False, False),
    "seed sweep: + np.take permutation": (True, False, False),
    "seed sweep: + checkpoints behind the next task": (True, True, False),
}
LAMBDA_SWEEP = {"λ sweep, one seed: stream cache off": False, "λ sweep, one seed: stream cache on": True}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="jobs per configuration")
    args = parser.parse_args(argv)
    Learner.train_epoch = _timed_epoch  # type: ignore[method-assign]
    learners = LearnerCache()
    figures: dict[str, list[float]] = {name: [] for name in [*SEED_SWEEP, *LAMBDA_SWEEP]}
    loads = [os.getloadavg()[0]]
    started = dt.datetime.now().astimezone()
    with tempfile.TemporaryDirectory(prefix="ewc-warm-data-") as tmp:
        datasets = Path(tmp)
        configure(True, True, False)
        job(learners, datasets, 1000)  # traces the graph, parses the dataset once
        job(learners, datasets, 1001)
        seed = 0
        for r in range(args.rounds):
            for name, levers in SEED_SWEEP.items():
                configure(*levers)
                seed += 1
                figures[name].append(job(learners, datasets, seed)[0])
            for name, keep in LAMBDA_SWEEP.items():
                configure(True, True, keep)
                figures[name].append(job(learners, datasets, 7, lam=10.0 + r + 0.5 * keep)[0])
            loads.append(os.getloadavg()[0])
    configure(True, True, True)
    print(f"EWC Server warm-job overhead — {started:%Y-%m-%d %H:%M %Z}, {os.cpu_count()} cores, "
          f"load {min(loads):.1f}–{max(loads):.1f}, {args.rounds} job(s) per row")  # fmt: skip
    print("| configuration | outside the epochs, median s/job | fastest |")
    print("|---|---|---|")
    for name, values in figures.items():
        print(f"| {name} | {statistics.median(values):.3f} | {min(values):.3f} |")
    streams = WORKER_STREAMS()
    print(f"stream cache: {streams.hits} hits, {streams.misses} misses")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
