"""A sweep's best point, named only when it beats the runner-up by more than the noise.

The rule (README "Sweeps: the best point"): rank the grid points by mean average accuracy
over their succeeded runs (seeds), ties to less forgetting. The leader is the best point
only if Welch's t-test says its mean is above the runner-up's: two-sided, α = 0.05,

    t = (m₁ − m₂) / √(s₁²/n₁ + s₂²/n₂),   df = Welch–Satterthwaite,

and t must exceed Student's t quantile 0.975 at df (df rounded down, so the bar is never
lower than the exact one). Each of the two points needs at least 2 succeeded runs: with one
run the spread between seeds is unknown and no point is named. When both points have no
spread at all (identical runs), any difference counts. Otherwise `best` is None and the
reason says why (within the noise, too few runs, nothing to compare).

Pure arithmetic on the rows of `store.sweeps.point_statistics`; no SciPy (a table of the
quantiles), so the API answers it on every request for free.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

RULE = "welch-t"
ALPHA = 0.05
MIN_RUNS = 2
METRIC = "average_accuracy"

#: Student's t quantile 0.975 (two-sided α = 0.05) by degrees of freedom.
T_975: dict[int, float] = {
    1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
    9: 2.262, 10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120,
    17: 2.110, 18: 2.101, 19: 2.093, 20: 2.086, 21: 2.080, 22: 2.074, 23: 2.069, 24: 2.064,
    25: 2.060, 26: 2.056, 27: 2.052, 28: 2.048, 29: 2.045, 30: 2.042, 40: 2.021, 60: 2.000,
    120: 1.980,
}  # fmt: skip
T_975_INFINITE = 1.960


def t_critical(df: float) -> float:
    """t quantile 0.975 at the largest tabulated df not above `df` (conservative)."""
    if math.isinf(df):
        return T_975_INFINITE
    return T_975[max(k for k in T_975 if k <= max(df, 1.0))]


def welch(m1: float, s1: float, n1: int, m2: float, s2: float, n2: int) -> dict[str, float | None]:
    """{"t", "df"} of Welch's test of m1 − m2 (sample stds, n ≥ 2 each); t is ±inf and df
    None when neither sample varies."""
    v1, v2 = s1 * s1 / n1, s2 * s2 / n2
    se2 = v1 + v2
    diff = m1 - m2
    if se2 == 0:
        return {"t": 0.0 if diff == 0 else math.copysign(math.inf, diff), "df": None}
    df = se2 * se2 / (v1 * v1 / (n1 - 1) + v2 * v2 / (n2 - 1))
    return {"t": diff / math.sqrt(se2), "df": df}


def _label(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items()) or "the only point"


def _rank(row: Mapping[str, Any]) -> tuple[float, float]:
    m = row["metrics"]
    return (m[METRIC]["mean"], -(m["forgetting"]["mean"] or 0.0))


def choose_best(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """{"index", "reason", "test"}: the index in `rows` of the best point (None when
    undecided), a sentence saying why, and the test's figures (None without a runner-up)."""
    scored = sorted(
        (i for i, r in enumerate(rows) if r["metrics"][METRIC]["mean"] is not None),
        key=lambda i: _rank(rows[i]), reverse=True,
    )  # fmt: skip
    if not scored:
        return {"index": None, "reason": "no run has succeeded yet", "test": None}
    if len(scored) == 1:
        what = "only one grid point" if len(rows) == 1 else "only one grid point has results"
        return {"index": None, "reason": f"{what}: nothing to compare it with", "test": None}
    lead, second = rows[scored[0]], rows[scored[1]]
    a, b = lead["metrics"][METRIC], second["metrics"][METRIC]
    test: dict[str, Any] = {
        "rule": RULE, "alpha": ALPHA, "metric": METRIC,
        "leader": dict(lead["params"]), "runner_up": dict(second["params"]),
        "difference": a["mean"] - b["mean"], "t": None, "df": None, "critical_t": None,
        "decided": False,
    }  # fmt: skip
    gap = f"{_label(lead['params'])} leads {_label(second['params'])} by " \
          f"{100 * test['difference']:.2f} points of average accuracy"  # fmt: skip
    few = [(r, s["n"]) for r, s in ((lead, a), (second, b)) if s["n"] < MIN_RUNS]
    if few:
        runs = "; ".join(f"{_label(r['params'])} has {n}" for r, n in few)
        return {"index": None, "test": test, "reason": (
            f"undecided: {gap}, but the noise is unknown: each needs at least {MIN_RUNS} "
            f"succeeded runs (seeds, e.g. --grid seed=0,1,2); {runs}")}  # fmt: skip
    w = welch(a["mean"], a["std"] or 0.0, a["n"], b["mean"], b["std"] or 0.0, b["n"])
    crit = T_975_INFINITE if w["df"] is None else t_critical(w["df"])
    decided = w["t"] > crit
    test.update(t=w["t"], df=w["df"], critical_t=crit, decided=decided)
    figures = "no spread between seeds" if w["df"] is None else \
        f"Welch's t = {w['t']:.2f} {'>' if decided else '≤'} {crit:.3f} at df {w['df']:.1f}"  # fmt: skip
    if decided:
        reason = f"{gap}, more than the noise ({figures}, two-sided α = {ALPHA})"
        return {"index": scored[0], "reason": reason, "test": test}
    reason = f"undecided: {gap}, within the noise ({figures}, two-sided α = {ALPHA})"
    return {"index": None, "reason": reason, "test": test}
