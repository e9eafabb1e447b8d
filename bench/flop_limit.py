"""How near the arithmetic limit a training epoch runs, and which levers move it (issue 13, 2).

    .venv/bin/python bench/flop_limit.py                 # ≈ 3–6 min on 2 loaded cores
    .venv/bin/python bench/flop_limit.py --quick         # fewer repetitions, no thread sweep
    .venv/bin/python bench/flop_limit.py --models mlp    # one model
    .venv/bin/python bench/flop_limit.py --quick --no-levers  # the learner only: per batch/loop, ± XLA

What it measures, all in this run (so load hits every figure alike):

1. **FLOPs of one training epoch**, counted from the model's layers: a Dense layer of
   n_in → n_out costs 2·n_in·n_out per example forward, a Conv2D 2·k_h·k_w·c_in·c_out·H_out·
   W_out; the backward pass costs twice the forward (the gradient with respect to the input
   and to the weights: one matmul each), so a training step is 3 × forward. Activations,
   pooling, batch-norm, the loss and Adam (≈ 10 elementwise ops per weight) are left out;
   they are listed separately as memory-bound work. Epoch = 3,200 examples (task 1 of
   mnist-5k's 3-task permute), batch 256 → 13 steps.
2. **This machine's dense float32 rate**: `tf.linalg.matmul` of square matrices (sides 512,
   1024, 2048), the best of 10 calls of each and the highest of the three (best, not median:
   the limit is what the cores can do when they get the time), TensorFlow's default threads. Also the rate at the epoch's own shapes
   (256 × 784 @ 784 × 100, the mlp's largest matmul), which bounds what small matmuls reach.
3. **Our epoch**: `Learner.train_epoch` of the real learner (mlp, lenet, cifarnet; each on
   mnist-5k, no augmentation, no EWC: the same as bench/core_speed.py's "training epoch").
   cifarnet (≈ 2.8 TFLOP an epoch on 28 × 28 inputs: a minute at 45 GFLOP/s) is timed on 3
   steps and scaled to 13; on 2 loaded cores even that takes over 15 minutes (a GPU's model).
   Reported: epoch time, FLOP time (= FLOPs ÷ rate), epoch ÷ FLOP time, for the learner
   side by side in every round: one compiled call per batch (`steps_per_call=1`: the
   learner before the loop), its default (`EWC_STEPS_PER_CALL=auto`: the mlp's 12 full
   batches in one call, then the short one; 1 step a call for conv models, so for those the
   whole-epoch loop is timed too), its XLA update one call per batch (`xla=True`, forced
   even for conv models; `EWC_XLA=1` gives it to models without), and XLA with the epoch's
   full batches in one call (the whole loop XLA-compiled; models without convolutions).
4. **Levers** (not with `--no-levers`), measured on an equivalent step built here (same
   Keras model and Adam as the learner): per-step `tf.function` calls (the learner's
   way) · all 13 steps in one compiled call (a `tf.range` loop over a [13, 256] index tensor
   inside the graph, as Keras' `steps_per_execution`) · XLA (`jit_compile=True`) per step ·
   XLA + the loop · batch 3,200 (one step per epoch: what the per-step overhead costs) ·
   and, in fresh processes, intra-op threads 1 and 2 (inter-op 1 and 2). Evaluation: the
   validation sets of 3 tasks in one `Learner.accuracy` call against one call per task.

Every time is a median of interleaved repetitions (a shuffled order each round) after
warm-up; the machine is shared (2 cores, other sessions' test suites running): read the
ratios, which were taken side by side, more than the absolute times.
"""

from __future__ import annotations

import argparse
import json
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

EPOCH_EXAMPLES = 3200
BATCH = 256
# The learner's variants timed side by side ("our epoch"):
PER_BATCH = "learner, one call per batch (k = 1)"
DEFAULT = "learner, default (EWC_STEPS_PER_CALL=auto)"
LOOP = "learner, the epoch's full batches in one call"
XLA_PER_BATCH = "learner, XLA update, one call per batch"
XLA_LOOP = "learner, XLA, the epoch's full batches in one call"


def _configure_threads(intra: int, inter: int) -> None:
    import tensorflow as tf

    if intra:
        tf.config.threading.set_intra_op_parallelism_threads(intra)
    if inter:
        tf.config.threading.set_inter_op_parallelism_threads(inter)


# FLOP counting ------------------------------------------------------------------------------


def forward_flops(model) -> tuple[int, int]:
    """(multiply-add FLOPs of one example's forward pass, elements of every activation)."""
    import keras

    flops, activations = 0, 0
    for layer in model.layers:
        out = layer.output.shape[1:]
        size = 1
        for d in out:
            size *= int(d)
        if isinstance(layer, keras.layers.Dense):
            flops += 2 * int(layer.kernel.shape[0]) * int(layer.kernel.shape[1])
            activations += size
        elif isinstance(layer, keras.layers.Conv2D):
            kh, kw, cin, cout = (int(d) for d in layer.kernel.shape)
            flops += 2 * kh * kw * cin * cout * int(out[0]) * int(out[1])
            activations += size
        elif not isinstance(layer, keras.layers.InputLayer):
            activations += size
    return flops, activations


def epoch_flops(model) -> int:
    """Training FLOPs of an epoch: 3 × forward (forward + backward ≈ 2 × forward)."""
    return 3 * forward_flops(model)[0] * EPOCH_EXAMPLES


# Timing -------------------------------------------------------------------------------------


def interleaved(fns: dict[str, Callable[[], object]], reps: int, warmup: int = 2) -> dict[str, list[float]]:
    import numpy as np

    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    shuffle = np.random.default_rng(0)
    for _ in range(reps):
        for name in shuffle.permutation(list(fns)):
            t0 = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - t0)
    return times


def paired(times: dict[str, list[float]], a: str, b: str) -> float:
    return statistics.median(x / y for x, y in zip(times[a], times[b]))


def matmul_rate(reps: int = 10) -> float:
    """Best dense float32 FLOP/s of square matmuls of sides 512, 1024 and 2048 (best of
    `reps` each; the largest of the three: on a loaded machine a long single op is the
    likeliest to be cut by another process, so the smaller sides can show the higher rate)."""
    return max(square_rate(n, reps) for n in (512, 1024, 2048))


def square_rate(n: int, reps: int) -> float:
    """Best dense float32 FLOP/s of an n × n @ n × n matmul (one compiled call each)."""
    import tensorflow as tf

    a = tf.random.normal((n, n), seed=1)
    b = tf.random.normal((n, n), seed=2)
    mm = tf.function(lambda: tf.reduce_sum(tf.linalg.matmul(a, b)))
    float(mm())
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        float(mm())
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def shape_rate(m: int, k: int, n: int, reps: int = 200) -> float:
    """Best FLOP/s of an (m × k) @ (k × n) matmul, 20 per compiled call (small shapes)."""
    import tensorflow as tf

    a = tf.random.normal((m, k), seed=1)
    b = tf.random.normal((k, n), seed=2)

    @tf.function
    def twenty():
        total = tf.constant(0.0)
        for i in range(20):
            total += tf.reduce_sum(tf.linalg.matmul(a + float(i), b))
        return total

    float(twenty())
    best = float("inf")
    for _ in range(reps // 20 + 1):
        t0 = time.perf_counter()
        float(twenty())
        best = min(best, time.perf_counter() - t0)
    return 20 * 2 * m * k * n / best


# The data and our learner --------------------------------------------------------------------


def task_data(model: str):
    import numpy as np

    from cli.run import default_dataset_dir
    from continual_core.datasets import load_dataset
    from continual_core.spec import ExperimentSpec
    from continual_core.tasks import make_tasks

    spec = ExperimentSpec(dataset="mnist-5k", model=model, epochs=15, splits=3, dataset_update="permute")
    tasks = make_tasks(spec, load_dataset(spec, default_dataset_dir()))
    return spec, tasks, np.random.default_rng(0).permutation(len(tasks[0].train_y))[:EPOCH_EXAMPLES]


class EquivalentStep:
    """The learner's training step rebuilt here (its model, a fresh Adam, the same loss) in
    the variants the levers need. Each compiled function is traced once, then timed."""

    def __init__(self, spec, x, y, order):
        import keras
        import tensorflow as tf

        from continual_core.models import build_model

        keras.utils.set_random_seed(0)
        self.model = build_model(spec)
        self.weights = list(self.model.trainable_variables)
        self.optimizer = keras.optimizers.Adam(spec.learning_rate)
        self.optimizer.build(self.weights)
        self.x, self.y = x, y
        steps = len(order) // BATCH
        self.batches = [tf.constant(order[s * BATCH : (s + 1) * BATCH], tf.int32) for s in range(steps)]
        self.grid = tf.constant(order[: steps * BATCH].reshape(steps, BATCH), tf.int32)
        self.whole = tf.constant(order, tf.int32)
        sig = [tf.TensorSpec((None,), tf.int32)]
        self.step = tf.function(self._step, input_signature=sig)
        self.step_xla = tf.function(self._step, input_signature=sig, jit_compile=True)
        grid_sig = [tf.TensorSpec((None, BATCH), tf.int32)]
        self.loop = tf.function(self._loop, input_signature=grid_sig)
        self.loop_xla = tf.function(self._loop, input_signature=grid_sig, jit_compile=True)

    def _step(self, idx):
        import keras
        import tensorflow as tf

        x, y = tf.gather(self.x, idx), tf.gather(self.y, idx)
        with tf.GradientTape() as tape:
            logits = self.model(x, training=True)
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))
        self.optimizer.apply(tape.gradient(loss, self.weights), self.weights)
        return loss

    def _loop(self, grid):
        import tensorflow as tf

        total = tf.constant(0.0)
        for i in tf.range(tf.shape(grid)[0]):
            total += self._step(grid[i])
        return total

    def per_step(self, fn) -> Callable[[], None]:
        def run() -> None:
            loss = None
            for idx in self.batches:
                loss = fn(idx)
            float(loss)

        return run

    def one_call(self, fn) -> Callable[[], None]:
        return lambda: float(fn(self.grid))

    def big_batch(self) -> Callable[[], None]:
        return lambda: float(self.step(self.whole))


def measure_model(model: str, rate: float, reps: int, levers: bool) -> dict:
    """Epoch of our learner, its FLOPs and ratio; with `levers`, the equivalent step's variants."""
    import tensorflow as tf

    from continual_core.learner import Learner

    spec, tasks, order = task_data(model)
    x, y = tf.constant(tasks[0].train_x), tf.constant(tasks[0].train_y)
    steps = EPOCH_EXAMPLES // BATCH + (EPOCH_EXAMPLES % BATCH > 0)
    whole = EPOCH_EXAMPLES // BATCH  # the epoch's full batches in one call
    learners = {  # steps_per_call: 1 = one call per batch (the learner before the loop), 0 = auto
        PER_BATCH: Learner(spec, xla=False, steps_per_call=1),
        DEFAULT: Learner(spec, xla=False, steps_per_call=0),
        XLA_PER_BATCH: Learner(spec, xla=True, steps_per_call=1),
    }
    if learners[DEFAULT].call_steps(BATCH) < whole:  # conv: auto is 1; the loop measured anyway
        learners[LOOP] = Learner(spec, xla=False, steps_per_call=whole)
    if not learners[DEFAULT]._conv:  # XLA of the whole loop: ≈ 16× slower for lenet (BENCHMARKS)
        learners[XLA_LOOP] = Learner(spec, xla=True, steps_per_call=whole)
    fwd, acts = forward_flops(learners[PER_BATCH].model)
    flops = 3 * fwd * EPOCH_EXAMPLES
    cut = order if model != "cifarnet" else order[: 3 * BATCH]  # cifarnet: 3 steps, scaled
    scale = 1.0 if model != "cifarnet" else steps / 3
    fns: dict[str, Callable[[], object]] = {
        name: (lambda lr=lr: lr.train_epoch(x, y, cut, lambda: False)) for name, lr in learners.items()
    }
    if levers:
        eq = EquivalentStep(spec, x, y, cut)
        fns |= {
            "per-step tf.function (equivalent)": eq.per_step(eq.step),
            "all steps in one compiled call": eq.one_call(eq.loop),
            "XLA per step": eq.per_step(eq.step_xla),
            "XLA, all steps in one call": eq.one_call(eq.loop_xla),
        }
        if model != "cifarnet":
            fns["one step of 3,200 (batch = epoch)"] = eq.big_batch()
    n = reps if model != "cifarnet" else max(3, reps // 4)
    t = interleaved(fns, n, warmup=1 if model == "cifarnet" else 2)
    out = {
        "model": model,
        "params": int(sum(int(tf.size(w)) for w in learners[PER_BATCH].weights)),
        "forward_flops_per_example": fwd,
        "activations_per_example": acts,
        "epoch_flops": flops,
        "flop_time_s": flops / rate,
        "times": {k: statistics.median(v) * scale for k, v in t.items()},
        "ratios_to_learner": {k: paired(t, k, PER_BATCH) for k in t},
        "steps_per_call": {k: lr.call_steps(BATCH) for k, lr in learners.items()},
        "xla_in_use": {k: lr.xla for k, lr in learners.items()},  # False: fell back
        "xla_loop_in_use": {k: lr.xla_loop for k, lr in learners.items()},
    }
    out["over_limit"] = {k: v / out["flop_time_s"] for k, v in out["times"].items()}
    out["epoch_s"] = out["times"][DEFAULT]
    out["epoch_over_limit"] = out["over_limit"][DEFAULT]
    learner = learners[PER_BATCH]
    if model == "mlp":  # evaluation: 3 tasks' validation sets in one call vs one per task
        import numpy as np

        vx = tf.constant(np.concatenate([tk.val_x for tk in tasks]))
        vy = np.concatenate([tk.val_y for tk in tasks])
        bounds = list(np.cumsum([0] + [len(tk.val_y) for tk in tasks]))
        per = [(tf.constant(tk.val_x), tk.val_y) for tk in tasks]
        te = interleaved({
            "one call": lambda: learner.accuracy(vx, vy, bounds),
            "one call per task": lambda: [learner.accuracy(a, b, [0, len(b)]) for a, b in per],
        }, reps)  # fmt: skip
        out["eval"] = {k: statistics.median(v) for k, v in te.items()}
        out["eval_ratio"] = paired(te, "one call per task", "one call")
    return out


def thread_child(intra: int, inter: int, reps: int) -> dict:
    """Run in a fresh process: the threads must be set before TensorFlow starts its pools."""
    _configure_threads(intra, inter)
    import tensorflow as tf

    rate = matmul_rate(reps=5)
    spec, tasks, order = task_data("mlp")
    x, y = tf.constant(tasks[0].train_x), tf.constant(tasks[0].train_y)
    from continual_core.learner import Learner

    learner = Learner(spec, xla=False, steps_per_call=1)
    looped = Learner(spec, xla=False, steps_per_call=0)
    eq = EquivalentStep(spec, x, y, order)
    t = interleaved({
        "learner": lambda: learner.train_epoch(x, y, order, lambda: False),
        "learner_loop": lambda: looped.train_epoch(x, y, order, lambda: False),
        "loop": eq.one_call(eq.loop),
        "loop_xla": eq.one_call(eq.loop_xla),
    }, reps)  # fmt: skip
    return {"intra": intra, "inter": inter, "rate": rate, **{k: statistics.median(v) for k, v in t.items()}}


def load_average() -> str:
    try:
        return " / ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=15, help="timed rounds (cifarnet: a quarter)")
    parser.add_argument("--models", nargs="+", default=["mlp", "lenet", "cifarnet"])
    parser.add_argument("--quick", action="store_true", help="5 repetitions, no thread sweep")
    parser.add_argument("--no-levers", action="store_true", help="only the learner: per batch and loop, with and without XLA")
    parser.add_argument("--json", type=Path, default=None, help="also write every figure here")
    parser.add_argument("--thread-child", nargs=2, type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.thread_child:
        print(json.dumps(thread_child(*args.thread_child, reps=args.reps)))
        return 0
    reps = 5 if args.quick else args.reps
    load_start = load_average()
    import keras
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    rate = matmul_rate()
    small = shape_rate(BATCH, 784, 100)
    results = []
    for m in args.models:
        results.append(measure_model(m, rate, reps, levers=not args.no_levers))
        r = results[-1]
        print(f"{m}: epoch {1e3 * r['epoch_s']:.1f} ms, limit {1e3 * r['flop_time_s']:.1f} ms "
              f"({r['epoch_over_limit']:.1f}×); {json.dumps(r['times'])}", file=sys.stderr, flush=True)
    threads = []
    if not args.quick:
        for intra, inter in ((1, 1), (2, 1), (2, 2)):
            done = subprocess.run(
                [sys.executable, __file__, "--thread-child", str(intra), str(inter), "--reps", str(max(5, reps // 2))],
                capture_output=True, text=True, check=True, cwd=ROOT,
            )  # fmt: skip
            threads.append(json.loads(done.stdout.strip().splitlines()[-1]))
    load_end = load_average()

    print(f"## FLOP limit of a training epoch ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})\n")
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} CPUs, "
          f"load average {load_start} at the start, {load_end} at the end (shared machine).\n")
    print(f"Dense float32 rate (square matmuls 512–2048, best of 10, default threads): **{rate / 1e9:.1f} GFLOP/s**; "
          f"at the mlp's first-layer shape (256×784 @ 784×100, best): {small / 1e9:.1f} GFLOP/s.\n")
    print("| model | params | FLOPs / epoch (3 × fwd) | FLOP time | per batch (k = 1) | ÷ limit | "
          "default (k) | ÷ limit | ÷ per batch | XLA per batch | ÷ limit | XLA loop | ÷ limit | "
          "÷ per batch | target |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")

    def cell(r: dict, name: str) -> str:
        if name not in r["times"]:
            return "– | –"
        fell = "" if r["xla_in_use"][name] or "XLA" not in name else " (plain: fell back)"
        return f"{1e3 * r['times'][name]:.1f} ms{fell} | {r['over_limit'][name]:.1f}×"

    for r in results:
        k = r["steps_per_call"][DEFAULT]
        xla_loop = r["ratios_to_learner"].get(XLA_LOOP)
        print(f"| {r['model']} | {r['params']:,} | {r['epoch_flops'] / 1e9:.2f} G | {1e3 * r['flop_time_s']:.1f} ms | "
              f"{cell(r, PER_BATCH)} | {1e3 * r['times'][DEFAULT]:.1f} ms (k = {k}) | {r['over_limit'][DEFAULT]:.1f}× | "
              f"{r['ratios_to_learner'][DEFAULT]:.2f}× | {cell(r, XLA_PER_BATCH)} | {cell(r, XLA_LOOP)} | "
              f"{'–' if xla_loop is None else f'{xla_loop:.2f}×'} | {'≤ 2×' if r['model'] == 'mlp' else 'report'} |")
    print("\nEvery variant (the learner's, then the equivalent step built in the benchmark; time per "
          "epoch; × = its time ÷ the per-batch learner's, per round):\n")
    names = list(dict.fromkeys(n for r in results for n in r["times"]))
    print("| variant | " + " | ".join(r["model"] for r in results) + " |")
    print("|---|" + "---|" * len(results))
    for name in names:
        cells = []
        for r in results:
            if name in r["times"]:
                lim = r["times"][name] / r["flop_time_s"]
                cells.append(f"{1e3 * r['times'][name]:.1f} ms · {r['ratios_to_learner'][name]:.2f}× · {lim:.1f}× limit")
            else:
                cells.append("–")
        print(f"| {name} | " + " | ".join(cells) + " |")
    for r in results:
        if "eval" in r:
            print(f"\nEvaluation, mlp, 3 × 800 validation examples: one call {1e3 * r['eval']['one call']:.1f} ms, "
                  f"one call per task {1e3 * r['eval']['one call per task']:.1f} ms "
                  f"(per task ÷ one call: {r['eval_ratio']:.2f}×).")
    if threads:
        print("\nThreads (mlp, fresh process each; epoch times in ms; rate in GFLOP/s):\n")
        print("| intra / inter | dense rate | learner per batch | learner default | one call | XLA one call |")
        print("|---|---|---|---|---|---|")
        for t in threads:
            print(f"| {t['intra']} / {t['inter']} | {t['rate'] / 1e9:.1f} | {1e3 * t['learner']:.1f} | "
                  f"{1e3 * t['learner_loop']:.1f} | {1e3 * t['loop']:.1f} | {1e3 * t['loop_xla']:.1f} |")
    if args.json:
        args.json.write_text(json.dumps({"rate": rate, "small_rate": small, "models": results,
                                         "threads": threads, "load": [load_start, load_end]}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
