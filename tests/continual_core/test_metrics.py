"""The summary of an accuracy matrix, on a hand-made matrix."""

import pytest

from continual_core.metrics import summarize

R = [[0.9, 0.1, 0.2],
     [0.7, 0.8, 0.3],
     [0.6, 0.75, 0.95]]


def test_summary_of_hand_made_matrix() -> None:
    s = summarize(R, initial=[0.1, 0.1, 0.1])
    assert s["average_accuracy"] == pytest.approx((0.6 + 0.75 + 0.95) / 3)
    assert s["bwt"] == pytest.approx(((0.6 - 0.9) + (0.75 - 0.8)) / 2)
    assert s["fwt"] == pytest.approx(((0.1 - 0.1) + (0.3 - 0.1)) / 2)
    # task 1 best after training 0.9 (final 0.6), task 2 best 0.8 (final 0.75)
    assert s["forgetting"] == pytest.approx((0.3 + 0.05) / 2)


def test_forgetting_uses_best_not_first() -> None:
    s = summarize([[0.5, 0.0, 0.0], [0.8, 0.9, 0.0], [0.4, 0.9, 0.9]])
    assert s["forgetting"] == pytest.approx((0.4 + 0.0) / 2)
    assert s["bwt"] == pytest.approx((-0.1 + 0.0) / 2)
    assert s["fwt"] is None


def test_single_task_has_no_transfer() -> None:
    assert summarize([[0.7]]) == {"average_accuracy": 0.7, "bwt": None, "fwt": None, "forgetting": None}


def test_forgetting_is_never_negative() -> None:
    # Task 1 improves after task 2: BWT is positive, but nothing was forgotten.
    s = summarize([[0.5, 0.1], [0.6, 0.9]])
    assert s["bwt"] == pytest.approx(0.1)
    assert s["forgetting"] == pytest.approx(0.0)
