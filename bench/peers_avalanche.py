"""The peers benchmark's Avalanche side: run by bench/peers.py with the interpreter of its
own virtualenv (`.bench-venvs/avalanche`: avalanche-lib + CPU PyTorch), never with ours.

    <venv>/bin/python bench/peers_avalanche.py DATA.npz OUT.json --seed 0 --fisher default|100

Reads the three permuted tasks that bench/peers.py wrote (float32 images in [0, 1], the
same 3,200 training and 1,000 test examples per task as ours), trains Avalanche's `Naive`
strategy with its `EWCPlugin` (mode "separate": one penalty per finished task) on an MLP
784-100-100-10 with Adam 1e-3, batches of 256, 5 epochs per task, and prints/writes the
same figures as ours: training seconds per epoch (evaluation excluded), seconds per
importance estimate, the whole run, and the test accuracy of every task after each task.

Importance: Avalanche's `EWCPlugin.compute_importances` squares the gradient of each
*mini-batch's* mean loss over the whole training set of the task (13 batches of 256) and
averages them; it has no sample-count option. `--fisher default` runs it as it is;
`--fisher 100` passes it 100 examples drawn from the task (seeded) in batches of one — the
empirical Fisher of 100 samples, as ours (a subclass that only changes the dataset and the
batch size it is given).

λ: Avalanche's penalty is λ·ΣF(θ−θ*)², ours λ/2·ΣF(θ−θ*)², so ours λ = 100 is λ = 50 here.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time


def _without_torchvision_ops() -> None:
    """Let `import torchvision` (which Avalanche imports everywhere) succeed without its C++
    ops. PyPI's torchvision wheels are built against CUDA PyTorch, whose libraries the CPU
    build lacks, so its `_C.so` cannot load and the registration of its ops' meta kernels
    fails at import. Nothing here uses those ops (nms, roi_align, ...): an MLP on tensors."""
    import sys
    import types

    for name in ("torchvision._meta_registrations", "torchvision._autograd_registrations"):
        sys.modules.setdefault(name, types.ModuleType(name))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("data")
    parser.add_argument("out")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fisher", choices=["default", "100"], default="default")
    parser.add_argument("--lambda-ours", type=float, default=100.0)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()

    t_import = time.perf_counter()
    import numpy as np
    import torch

    _without_torchvision_ops()
    from avalanche.benchmarks.scenarios.dataset_scenario import benchmark_from_datasets
    from avalanche.benchmarks.utils.classification_dataset import (
        _make_taskaware_tensor_classification_dataset as tensor_dataset,
    )
    from avalanche.training.plugins import EWCPlugin, SupervisedPlugin
    from avalanche.training.plugins.evaluation import EvaluationPlugin
    from avalanche.training.supervised import Naive

    import_s = time.perf_counter() - t_import
    torch.manual_seed(args.seed)
    data = np.load(args.data)
    tasks = int(data["tasks"])
    train = [tensor_dataset(torch.from_numpy(data[f"train_x{k}"]), torch.from_numpy(data[f"train_y{k}"]).long(),
                            task_labels=0, targets=torch.from_numpy(data[f"train_y{k}"]).long())
             for k in range(tasks)]  # fmt: skip
    test = [(torch.from_numpy(data[f"test_x{k}"]), torch.from_numpy(data[f"test_y{k}"]).long()) for k in range(tasks)]
    bench = benchmark_from_datasets(train=train, test=train)  # test stream unused: we evaluate below

    model = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(784, 100), torch.nn.ReLU(),
        torch.nn.Linear(100, 100), torch.nn.ReLU(), torch.nn.Linear(100, 10),
    )  # fmt: skip
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    timings: dict[str, list[float]] = {"train_epoch_s": [], "eval_s": [], "fisher_s": []}
    matrix: list[list[float]] = []

    def accuracy() -> list[float]:
        model.eval()
        with torch.no_grad():
            out = [float((model(x).argmax(1) == y).float().mean()) for x, y in test]
        model.train()
        return out

    class Timer(SupervisedPlugin):
        def before_training_epoch(self, strategy, **kwargs):
            self.t0 = time.perf_counter()

        def after_training_epoch(self, strategy, **kwargs):
            timings["train_epoch_s"].append(time.perf_counter() - self.t0)
            t0 = time.perf_counter()
            accuracy()  # evaluated every epoch on every task, as ours; timed apart
            timings["eval_s"].append(time.perf_counter() - t0)

    rng = np.random.default_rng(args.seed)

    class TimedEWC(EWCPlugin):
        def compute_importances(self, model, criterion, optimizer, dataset, device, batch_size, num_workers=0):
            if args.fisher == "100":
                dataset = dataset.subset(rng.choice(len(dataset), 100, replace=False).tolist())
                batch_size = 1
            t0 = time.perf_counter()
            out = super().compute_importances(model, criterion, optimizer, dataset, device, batch_size, num_workers)
            timings["fisher_s"].append(time.perf_counter() - t0)
            return out

    strategy = Naive(
        model, optimizer, torch.nn.CrossEntropyLoss(), train_mb_size=256, train_epochs=args.epochs,
        eval_mb_size=1000, device="cpu", plugins=[Timer(), TimedEWC(ewc_lambda=args.lambda_ours / 2)],
        evaluator=EvaluationPlugin(loggers=[]),
    )  # fmt: skip
    started = time.perf_counter()
    for experience in bench.train_stream:
        strategy.train(experience)
        matrix.append(accuracy())
    total_s = time.perf_counter() - started
    result = {
        "framework": f"avalanche-lib {__import__('avalanche').__version__}, torch {torch.__version__}",
        "fisher": args.fisher,
        "accuracy_matrix": matrix,
        "timings": {**timings, "total_s": total_s, "import_s": import_s},
        "threads": torch.get_num_threads(),
        "median_epoch_s": statistics.median(timings["train_epoch_s"]),
    }
    with open(args.out, "w") as f:
        json.dump(result, f)
    print(json.dumps({"total_s": total_s, "final": matrix[-1]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
