"""The words every process shares, defined once: a job's statuses and the queues.

Free of SQLAlchemy (and of everything else), so a command line or a page can name them
without loading the store: `store.models` types its status column with `JobStatus`, the
API hands these to its templates and scripts (`api.vocabulary`), `ewc jobs` / `ewc sweep`
wait for `FINISHED_STATUSES`.
"""

from __future__ import annotations

import enum


class JobStatus(str, enum.Enum):
    """A job's life: queued → running → succeeded | failed | cancelled."""

    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def finished(self) -> bool:
        """True once the job can change no more (succeeded, failed or cancelled)."""
        return self in FINISHED


#: The statuses a job never leaves.
FINISHED: tuple[JobStatus, ...] = (JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled)
#: The statuses of a job that still holds a place in its queue.
ACTIVE: tuple[JobStatus, ...] = (JobStatus.queued, JobStatus.running)
#: Every status as text, in life order; and the finished ones as text.
STATUSES: tuple[str, ...] = tuple(s.value for s in JobStatus)
FINISHED_STATUSES: tuple[str, ...] = tuple(s.value for s in FINISHED)

#: The broker queues a job can wait in: "gpu" for device "gpu", "cpu" otherwise.
QUEUES: tuple[str, ...] = ("cpu", "gpu")

#: The metrics a sweep averages over seeds, in the order its tables show them.
SWEEP_METRICS: tuple[str, ...] = ("average_accuracy", "bwt", "forgetting")
#: Grid keys whose values are replicates of one point (averaged, never on an axis).
REPLICATE_KEYS: tuple[str, ...] = ("seed",)
