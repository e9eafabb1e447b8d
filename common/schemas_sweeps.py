"""The figures behind a sweep's `best` point (`SweepOut.best_test`): the rule of
`store.sweep_best` (Welch's t-test of the leader against the runner-up, two-sided α = 0.05,
each with at least 2 succeeded runs). Pure pydantic, like `common.schemas`."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class BestTest(BaseModel):
    """The leader against the runner-up on mean average accuracy over seeds."""

    rule: str = Field(description='"welch-t": Welch\'s t-test, two-sided.')
    alpha: float = Field(description="The test's level (0.05).")
    metric: str = Field(description="The metric compared (average_accuracy).")
    leader: dict[str, Any] = Field(description="The params of the point with the highest mean.")
    runner_up: dict[str, Any] = Field(description="The params of the second highest.")
    difference: float = Field(description="Leader's mean minus the runner-up's (a fraction).")
    t: float | None = Field(description="Welch's t (None: too few runs to test).")
    df: float | None = Field(description="Welch–Satterthwaite degrees of freedom "
                             "(None: too few runs, or no spread between seeds).")  # fmt: skip
    critical_t: float | None = Field(description="Student's t quantile 0.975 at df (rounded "
                                     "down) that t must exceed.")  # fmt: skip
    decided: bool = Field(description="Whether the leader beats the runner-up (then `best`).")
