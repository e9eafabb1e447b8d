"""The server's upper bounds on what a spec may ask (settings `max_*`, `job_time_limit_s`).

The spec itself says what is valid; these say what this server is willing to run.
"""

from __future__ import annotations

from continual_core.spec import ExperimentSpec
from ewc.settings import Settings


def limit_problems(spec: ExperimentSpec, settings: Settings) -> list[tuple[str, str]]:
    """(field, message) for each value above a server bound; empty when all fit."""
    checks: list[tuple[str, int | None, int, str]] = [
        ("epochs", spec.epochs, settings.max_epochs, "EWC_MAX_EPOCHS"),
        ("splits", spec.splits, settings.max_splits, "EWC_MAX_SPLITS"),
        ("batch_size", spec.batch_size, settings.max_batch_size, "EWC_MAX_BATCH_SIZE"),
        (
            "ewc.samples",
            spec.ewc.samples if spec.ewc else None,
            settings.max_samples,
            "EWC_MAX_SAMPLES",
        ),
        (
            "fim.samples",
            spec.fim.samples if spec.fim else None,
            settings.max_samples,
            "EWC_MAX_SAMPLES",
        ),
        ("time_limit_s", spec.time_limit_s, settings.job_time_limit_s, "EWC_JOB_TIME_LIMIT_S"),
    ]
    return [
        (field, f"{value} is above this server's limit of {bound} ({env})")
        for field, value, bound, env in checks
        if value is not None and value > bound
    ]
