"""The scenarios' key claims on real digits (`mnist-5k`, split MNIST: `switch`, 5 tasks of
2 digits, 5 epochs per task, mlp 100-100), fast enough for every run of the suite (~30 s):

- with one shared head (class-IL) fine-tuning forgets every earlier task: it ends near
  1/5 of the digits right (measured 17-20 % on seeds 0-2; `bench/science.py --only table`);
- joint training (the upper bound) keeps them: far above fine-tuning (measured ~90 %);
- with a head per task (task-IL) the same fine-tuning stays far above class-IL (~96 %),
  because each head only has to tell its own two digits apart.

Fixed runs (the core is deterministic on CPU); the margins are tens of points, so one
seed is enough here, and `bench/science.py --only table` gives the means over seeds 0-2.
"""

from __future__ import annotations

import pytest

from continual_core.spec import ExperimentSpec

SPLIT = {"dataset": "mnist-5k", "dataset_update": "switch", "splits": 5, "epochs": 25, "seed": 0}


@pytest.fixture(scope="module")
def average(tmp_path_factory: pytest.TempPathFactory) -> dict[str, float]:
    from continual_core.trainer import train

    cache = tmp_path_factory.mktemp("datasets")
    runs = {"class-IL fine-tune": {}, "class-IL joint": {"joint": True}, "task-IL fine-tune": {"heads": "multi"}}
    results = {name: train(ExperimentSpec(**SPLIT, **extra), dataset_cache=cache) for name, extra in runs.items()}
    assert [r["scenario"] for r in results.values()] == ["class-IL", "class-IL", "task-IL"]
    return {name: r["summary"]["average_accuracy"] for name, r in results.items()}


def test_class_il_fine_tuning_forgets(average: dict[str, float]) -> None:
    assert average["class-IL fine-tune"] <= 0.30, average


def test_joint_is_the_upper_bound_of_class_il(average: dict[str, float]) -> None:
    assert average["class-IL joint"] >= average["class-IL fine-tune"] + 0.50, average


def test_task_il_fine_tuning_is_far_above_class_il(average: dict[str, float]) -> None:
    assert average["task-IL fine-tune"] >= 0.90, average
    assert average["task-IL fine-tune"] >= average["class-IL fine-tune"] + 0.60, average
