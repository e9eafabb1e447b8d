"""The server's upper bounds on what a spec may ask: every size a worker allocates and
every time it spends (settings `max_*`, `job_time_limit_s`, each an `EWC_*` variable).

The spec itself says what is valid; these say what this server is willing to run. `ewc
run` on one's own machine has none of them. Each value above its bound is a 422 naming the
field, the bound and the setting that raises it.
"""

from __future__ import annotations

from common.settings import Settings
from continual_core.spec import ExperimentSpec


def limit_problems(spec: ExperimentSpec, settings: Settings) -> list[tuple[str, str]]:
    """(field, message) for each value above a server bound; empty when all fit."""
    synthetic = spec.synthetic if spec.dataset == "synthetic" else None
    height, width, channels = spec.input_shape
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
    if synthetic is not None:
        checks += [
            ("synthetic.height", synthetic.height, settings.max_synthetic_side,
             "EWC_MAX_SYNTHETIC_SIDE"),
            ("synthetic.width", synthetic.width, settings.max_synthetic_side,
             "EWC_MAX_SYNTHETIC_SIDE"),
            ("synthetic.channels", synthetic.channels, settings.max_synthetic_channels,
             "EWC_MAX_SYNTHETIC_CHANNELS"),
            ("synthetic.train_size", synthetic.train_size, settings.max_synthetic_examples,
             "EWC_MAX_SYNTHETIC_EXAMPLES"),
            ("synthetic.test_size", synthetic.test_size, settings.max_synthetic_examples,
             "EWC_MAX_SYNTHETIC_EXAMPLES"),
        ]  # fmt: skip
    problems = [
        (field, f"{value} is above this server's limit of {bound} ({env})")
        for field, value, bound, env in checks
        if value is not None and value > bound
    ]
    per_input = height * width * channels
    if synthetic is not None and not problems:
        values = (synthetic.train_size + synthetic.test_size) * per_input
        if values > settings.max_synthetic_values:
            message = (
                f"(train_size + test_size) × height × width × channels = {values} values is "
                f"above this server's limit of {settings.max_synthetic_values} "
                "(EWC_MAX_SYNTHETIC_VALUES)"
            )
            problems.append(("synthetic", message))
    step = spec.batch_size * per_input
    if step > settings.max_batch_values and not problems:
        message = (
            f"{spec.batch_size} inputs of {height}×{width}×{channels} = {step} values per "
            f"step is above this server's limit of {settings.max_batch_values} "
            "(EWC_MAX_BATCH_VALUES); use a smaller batch_size"
        )
        problems.append(("batch_size", message))
    return problems
