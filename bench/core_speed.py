"""Speed of the training core against naive baselines, in one process, baseline and ours
interleaved (so machine load hits both alike). Prints a Markdown table.

    .venv/bin/python bench/core_speed.py            # about 1–2 minutes on 2 cores
    .venv/bin/python bench/core_speed.py --reps 5 --wall-reps 1   # quicker, noisier

Setup: mlp, mnist-5k, 3-task permute (task 1: 3,200 training examples, batch 256 → 13 steps
per epoch), CPU, float32. Times are medians over repetitions after a warm-up; ratios are
medians of per-round ratios (both sides measured in the same round).

Naive baselines (written here, the way the original project did it):
- epoch: an eager per-batch loop — slice numpy arrays, GradientTape, `optimizer.apply`;
- Fisher: one eager GradientTape per example, squared gradients summed in numpy;
- EWC: one quadratic penalty per finished task, λ/2 · Σ_k Σ_i F_k,i (θ_i − θ*_k,i)², in the
  same compiled step as ours (so only the penalty differs).
Ours: `Learner.train_epoch` (one traced `tf.function` step), `FisherDiagonal.estimate`
(vectorised per-example gradients), and the constant-memory EWC quadratic.

Targets (issue): epoch ≥ 5× faster, Fisher ≥ 30× faster, EWC step with 10 finished tasks
within 10 % of 1 task. Last row: the wall time of the first README command run as a
subprocess, TensorFlow import included.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import keras
import numpy as np
import tensorflow as tf

from cli.run import default_dataset_dir
from continual_core.datasets import load_dataset
from continual_core.fisher import per_example_loss
from continual_core.learner import Learner
from continual_core.models import build_model
from continual_core.spec import ExperimentSpec
from continual_core.tasks import make_tasks

README_COMMAND = ["run", "--dataset", "mnist-5k", "--epochs=15", "--splits=3", "--dataset-update=permute"]
NEVER = lambda: False


# Naive baselines ----------------------------------------------------------------------------


def naive_epoch(model: keras.Model, optimizer: keras.optimizers.Optimizer, x: np.ndarray,
                y: np.ndarray, order: np.ndarray, batch_size: int, penalty: Callable | None = None) -> float:
    """One epoch, eager, one GradientTape per batch of numpy slices. Returns the last loss."""
    weights = model.trainable_variables
    loss = tf.constant(0.0)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        xb, yb = x[idx], y[idx]
        with tf.GradientTape() as tape:
            logits = model(xb, training=True)
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(yb, logits, from_logits=True))
            if penalty is not None:
                loss += penalty(weights)
        optimizer.apply(tape.gradient(loss, weights), weights)
    return float(loss)


def naive_fisher(model: keras.Model, x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    """Empirical Fisher diagonal, one eager GradientTape per example (the original's loop)."""
    weights = model.trainable_variables
    total = [np.zeros(w.shape, np.float32) for w in weights]
    for n in range(len(x)):
        with tf.GradientTape() as tape:
            loss = per_example_loss(model(x[n : n + 1], training=False), y[n : n + 1], "empirical")[0]
        for t, g in zip(total, tape.gradient(loss, weights)):
            t += np.square(g.numpy())
    return [t / len(x) for t in total]


class NaiveEWC:
    """One quadratic penalty per finished task, kept as a growing list (the original's way)."""

    def __init__(self, lam: float):
        self.lam = lam
        self.tasks: list[tuple[list[tf.Tensor], list[tf.Tensor]]] = []

    def add(self, fisher: list[tf.Tensor], weights: list[tf.Variable]) -> None:
        self.tasks.append(([tf.constant(f) for f in fisher], [tf.constant(w) for w in weights]))

    def penalty(self, weights: list[tf.Variable]) -> tf.Tensor:
        total = tf.constant(0.0)
        for fisher, theta_star in self.tasks:
            for w, f, t in zip(weights, fisher, theta_star):
                total += tf.reduce_sum(f * tf.square(w - t))
        return 0.5 * self.lam * total


def naive_ewc_step(learner: Learner, ewc: NaiveEWC) -> Callable:
    """The learner's own compiled step, with the per-task penalty list in place of ours."""
    model, weights, optimizer = learner.model, learner.weights, learner.optimizer

    @tf.function
    def step(x_all: tf.Tensor, y_all: tf.Tensor, idx: tf.Tensor) -> tf.Tensor:
        x, y = tf.gather(x_all, idx), tf.gather(y_all, idx)
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))
            loss += ewc.penalty(weights)
        optimizer.apply(tape.gradient(loss, weights), weights)
        return loss

    return step


# Timing -------------------------------------------------------------------------------------


def interleaved(fns: dict[str, Callable[[], object]], reps: int, warmup: int = 2) -> dict[str, list[float]]:
    """Seconds of each call of each function: round-robin in a freshly shuffled order every
    round (so load spikes hit all alike), after `warmup` untimed rounds."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    names = list(fns)
    shuffle = np.random.default_rng(0)
    for _ in range(reps):
        for name in shuffle.permutation(names):
            t0 = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - t0)
    return times


def med(values: list[float]) -> float:
    return statistics.median(values)


def paired(times: dict[str, list[float]], a: str, b: str) -> float:
    """Median over rounds of time[a] / time[b] (the two ran in the same round)."""
    return statistics.median(x / y for x, y in zip(times[a], times[b]))


def steps(step: Callable, x: tf.Tensor, y: tf.Tensor, batches: list[tf.Tensor]) -> Callable[[], None]:
    """A function running `step` over every batch of index tensors, then waiting for the result."""
    def run() -> None:
        loss = None
        for idx in batches:
            loss = step(x, y, idx)
        float(loss)  # type: ignore[arg-type]
    return run


def wall_time(reps: int) -> tuple[float, float]:
    """Median wall seconds of the README command and of `import tensorflow`, fresh processes."""
    ewc = Path(sys.executable).with_name("ewc")
    cmd = [str(ewc), *README_COMMAND] if ewc.exists() else [sys.executable, "-c", "from cli.main import main; main()", *README_COMMAND]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    runs, imports = [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import tensorflow"], check=True, env=env, capture_output=True)
        imports.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, cwd=ROOT, env=env, capture_output=True)
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs), statistics.median(imports)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=15, help="timed repetitions per measurement")
    parser.add_argument("--wall-reps", type=int, default=3, help="runs of the README command")
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    cache = args.data_dir or default_dataset_dir()
    tf.config.experimental.enable_op_determinism()

    spec = ExperimentSpec(dataset="mnist-5k", epochs=15, splits=3, dataset_update="permute",
                          ewc={"lambda": 100.0})
    tasks = make_tasks(spec, load_dataset(spec, cache))
    x_np, y_np = tasks[0].train_x, tasks[0].train_y
    x, y = tf.constant(x_np), tf.constant(y_np)
    bs = spec.batch_size
    rng = np.random.default_rng(0)
    order = rng.permutation(len(y_np))
    rows: list[tuple[str, str, str, str, str]] = []

    # 1. Training epoch: naive eager loop vs the compiled step (no EWC in either).
    plain = ExperimentSpec.model_validate({**spec.model_dump(by_alias=True), "ewc": None})
    ours = Learner(plain)
    keras.utils.set_random_seed(0)
    naive_model = build_model(plain)
    naive_opt = keras.optimizers.Adam(plain.learning_rate)
    t = interleaved({
        "naive": lambda: naive_epoch(naive_model, naive_opt, x_np, y_np, order, bs),
        "ours": lambda: ours.train_epoch(x, y, order, NEVER),
    }, args.reps)
    rows.append(("training epoch (3,200 examples, 13 steps)", f"{1e3 * med(t['naive']):.0f} ms",
                 f"{1e3 * med(t['ours']):.1f} ms", f"{paired(t, 'naive', 'ours'):.1f}×", "≥ 5×"))

    # 2. Fisher of 100 samples: per-sample eager loop vs vectorised + compiled.
    idx = rng.choice(len(y_np), 100, replace=False)
    fx, fy = x_np[idx], y_np[idx]
    learner = Learner(spec)
    assert learner.fisher is not None
    t = interleaved({
        "naive": lambda: naive_fisher(learner.model, fx, fy),
        "ours": lambda: [f.numpy() for f in learner.fisher.estimate(fx, fy, (0, 0))],  # type: ignore[union-attr]
    }, max(3, args.reps // 3))
    rows.append(("empirical Fisher, 100 samples", f"{1e3 * med(t['naive']):.0f} ms",
                 f"{1e3 * med(t['ours']):.1f} ms", f"{paired(t, 'naive', 'ours'):.0f}×", "≥ 30×"))

    # 3. EWC step with 1 and with 10 finished tasks: ours (one quadratic, constant memory) vs
    #    naive (a penalty per task). Four learners, same weights; only the EWC state differs.
    batches = [tf.constant(order[s : s + bs], tf.int32) for s in range(0, len(order), bs)]
    fisher = learner.fisher.estimate(fx, fy, (0, 0))
    fns: dict[str, Callable[[], None]] = {}
    for k in (1, 10):
        mine = Learner(spec)
        naive_ewc = NaiveEWC(spec.ewc_lambda)
        for _ in range(k):
            mine.methods["ewc"].quadratic.consolidate(fisher, mine.weights)  # type: ignore[attr-defined]
            naive_ewc.add(fisher, mine.weights)
        other = Learner(spec)
        fns[f"ours{k}"] = steps(mine._train_step, x, y, batches)
        fns[f"naive{k}"] = steps(naive_ewc_step(other, naive_ewc), x, y, batches)
    fns["none"] = steps(ours._train_step, x, y, batches)
    t = interleaved(fns, args.reps * 4)
    ms = {k: 1e3 * med(v) / len(batches) for k, v in t.items()}
    rows.append(("step, no EWC (for reference)", "–", f"{ms['none']:.2f} ms", "–", "–"))
    for k in (1, 10):
        rows.append((f"EWC step, {k} finished task{'s' if k > 1 else ''}", f"{ms[f'naive{k}']:.2f} ms",
                     f"{ms[f'ours{k}']:.2f} ms", f"{paired(t, f'naive{k}', f'ours{k}'):.2f}×", "–"))
    rows.append(("EWC step, 10 tasks ÷ 1 task", f"{paired(t, 'naive10', 'naive1'):.2f}",
                 f"{paired(t, 'ours10', 'ours1'):.2f}", "–", "ours ≤ 1.10"))

    # 4. The first README command, fresh process, TensorFlow import included.
    if args.wall_reps > 0:
        wall, tf_import = wall_time(args.wall_reps)
        rows.append(("`ewc " + " ".join(README_COMMAND) + "`, wall", "–", f"{wall:.1f} s", "–", "–"))
        rows.append(("… of which `import tensorflow` alone (separate process)", "–", f"{tf_import:.1f} s", "–", "–"))

    print("| measurement | naive | ours | naive ÷ ours | target |")
    print("|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(f"\ntimes: medians of {args.reps} (Fisher: {max(3, args.reps // 3)}; EWC steps: {4 * args.reps}, "
          f"each an epoch of 13 steps) interleaved repetitions after 2 warm-ups; ratios: median of the "
          f"per-round ratios; README command: median of {args.wall_reps}; "
          f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
