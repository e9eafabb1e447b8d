"""The standard continual-learning summary of a test accuracy matrix.

R[i][j] = test accuracy on task j after training task i (0-based here; T tasks; fractions).
b[j]    = test accuracy on task j of the untrained, freshly initialised model.

- average accuracy = (1/T) Σ_j R[T-1][j]                       (the last row's mean)
- BWT (backward transfer) = 1/(T-1) Σ_{j<T-1} (R[T-1][j] − R[j][j])      (negative = forgetting)
- FWT (forward transfer)  = 1/(T-1) Σ_{j>0}   (R[j-1][j] − b[j])          (needs b)
- forgetting = 1/(T-1) Σ_{j<T-1} (max_{j≤i≤T-1} R[i][j] − R[T-1][j])
  (the best accuracy task j ever had once trained, minus its final accuracy; ≥ 0:
  a task that only improved has forgotten nothing)

BWT, FWT and forgetting are None for a single task (undefined).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def average_accuracy(matrix: Sequence[Sequence[float]]) -> float:
    """Mean of the last row: accuracy over all tasks after the last one (fraction)."""
    return float(np.mean(matrix[-1]))


def backward_transfer(matrix: Sequence[Sequence[float]]) -> float | None:
    """Mean over earlier tasks of (final accuracy − accuracy right after training it)."""
    r = np.asarray(matrix, dtype=float)
    t = len(r)
    if t < 2:
        return None
    return float(np.mean([r[t - 1, j] - r[j, j] for j in range(t - 1)]))


def forward_transfer(matrix: Sequence[Sequence[float]], initial: Sequence[float] | None) -> float | None:
    """Mean over later tasks of (accuracy before training it − the untrained model's)."""
    r = np.asarray(matrix, dtype=float)
    t = len(r)
    if t < 2 or initial is None:
        return None
    return float(np.mean([r[j - 1, j] - initial[j] for j in range(1, t)]))


def forgetting(matrix: Sequence[Sequence[float]]) -> float | None:
    """Mean over earlier tasks of (best accuracy it ever had once trained − final accuracy).

    The best includes the final row, so each term is ≥ 0 (improving is not negative
    forgetting; BWT is the signed measure)."""
    r = np.asarray(matrix, dtype=float)
    t = len(r)
    if t < 2:
        return None
    return float(np.mean([r[j:t, j].max() - r[t - 1, j] for j in range(t - 1)]))


def summarize(matrix: Sequence[Sequence[float]], initial: Sequence[float] | None = None) -> dict:
    """{"average_accuracy", "bwt", "fwt", "forgetting"} (None where undefined)."""
    return {
        "average_accuracy": average_accuracy(matrix),
        "bwt": backward_transfer(matrix),
        "fwt": forward_transfer(matrix, initial),
        "forgetting": forgetting(matrix),
    }
