"""The best point of a sweep is named only when it beats the runner-up by more than the
noise (store/sweep_best.py: Welch's t-test, two-sided α = 0.05, ≥ 2 runs a point): the test's
figures agree with SciPy's, and each undecided case says why."""

from __future__ import annotations

import math
import statistics

import pytest

from store.sweep_best import T_975, choose_best, t_critical, welch
from store.sweeps import mean_std

stats = pytest.importorskip("scipy.stats")


def row(params: dict, accuracies: list[float], forgetting: float = 0.1) -> dict:
    return {
        "params": params,
        "metrics": {
            "average_accuracy": mean_std(accuracies),
            "forgetting": mean_std([forgetting] * len(accuracies)),
        },
        "best": False,
    }


@pytest.mark.parametrize("a, b", [
    ([0.80, 0.84, 0.83], [0.70, 0.74, 0.78]),
    ([0.9, 0.91], [0.5, 0.7, 0.6, 0.65]),
    ([0.61, 0.60, 0.66, 0.64, 0.59], [0.58, 0.62]),
])  # fmt: skip
def test_welch_agrees_with_scipy(a, b):
    got = welch(statistics.mean(a), statistics.stdev(a), len(a),
                statistics.mean(b), statistics.stdev(b), len(b))  # fmt: skip
    want = stats.ttest_ind(a, b, equal_var=False)
    assert math.isclose(got["t"], want.statistic, rel_tol=1e-9)
    assert math.isclose(got["df"], want.df, rel_tol=1e-9)


def test_the_quantile_table_is_students_and_rounds_df_down():
    for df, value in T_975.items():
        assert abs(value - stats.t.ppf(0.975, df)) < 6e-4
    assert t_critical(2.9) == T_975[2] and t_critical(0.4) == T_975[1]
    assert t_critical(45.0) == T_975[40] and t_critical(1e6) == T_975[120]
    assert t_critical(math.inf) == 1.960
    for df in (1.0, 2.5, 7.3, 33.0, 500.0):  # never below the exact bar
        assert t_critical(df) >= stats.t.ppf(0.975, df) - 6e-4


def test_a_clear_winner_is_best_and_says_by_how_much():
    rows = [row({"ewc.lambda": 1}, [0.70, 0.74, 0.72]), row({"ewc.lambda": 100}, [0.90, 0.91, 0.89])]
    chosen = choose_best(rows)
    assert chosen["index"] == 1
    test = chosen["test"]
    assert test["decided"] and test["runner_up"] == {"ewc.lambda": 1}
    assert math.isclose(test["difference"], 0.18) and test["t"] > test["critical_t"]
    assert "more than the noise" in chosen["reason"] and "Welch's t" in chosen["reason"]


def test_a_lead_within_the_noise_is_undecided():
    # 82 % vs 80 % with a spread of ~4 points between seeds: t ≈ 0.6
    rows = [row({"x": "a"}, [0.78, 0.82, 0.80]), row({"x": "b"}, [0.78, 0.86, 0.82])]
    chosen = choose_best(rows)
    assert chosen["index"] is None and not chosen["test"]["decided"]
    assert chosen["test"]["leader"] == {"x": "b"}
    want = stats.ttest_ind([0.78, 0.86, 0.82], [0.78, 0.82, 0.80], equal_var=False)
    assert want.pvalue > 0.05 and math.isclose(chosen["test"]["t"], want.statistic)
    assert chosen["reason"].startswith("undecided") and "within the noise" in chosen["reason"]


def test_one_run_a_point_leaves_the_noise_unknown():
    rows = [row({"x": 1}, [0.5]), row({"x": 2}, [0.9]), row({"x": 3}, [0.6, 0.62])]
    chosen = choose_best(rows)
    assert chosen["index"] is None and chosen["test"]["t"] is None
    assert "at least 2" in chosen["reason"] and "x=2 has 1" in chosen["reason"]


def test_nothing_to_compare():
    assert choose_best([row({}, [])])["reason"] == "no run has succeeded yet"
    assert "only one grid point:" in choose_best([row({}, [0.9, 0.8])])["reason"]
    lone = choose_best([row({"x": 1}, [0.9, 0.8]), row({"x": 2}, [])])
    assert lone["index"] is None and "only one grid point has results" in lone["reason"]


def test_identical_seeds_any_difference_counts_and_a_tie_does_not():
    rows = [row({"x": 1}, [0.7, 0.7]), row({"x": 2}, [0.71, 0.71])]
    chosen = choose_best(rows)
    assert chosen["index"] == 1 and "no spread between seeds" in chosen["reason"]
    tie = [row({"x": 1}, [0.7, 0.7], forgetting=0.2), row({"x": 2}, [0.7, 0.7], forgetting=0.1)]
    chosen = choose_best(tie)
    assert chosen["index"] is None and chosen["test"]["leader"] == {"x": 2}  # less forgetting
