"""The training core's callback interface: how a caller (the CLI, the worker) hears about
progress and asks the run to stop.

Events are plain dataclasses of Python numbers so that any caller can serialise them.
Accuracies are fractions in [0, 1]; times are seconds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class RunStart:
    """Sent once before training: the shape of the run (also after a resume)."""

    num_tasks: int
    epochs_per_task: list[int]
    first_task: int  # 1-based; > 1 when resumed from a checkpoint


@dataclass(frozen=True)
class EpochEnd:
    """One training epoch finished and every task's validation set was evaluated."""

    task: int  # 1-based task index
    epoch: int  # 1-based epoch number across the whole run
    task_epoch: int  # 1-based epoch number within the task
    loss: float  # mean training loss over the epoch (with the EWC penalty)
    val_accuracy: list[float]  # validation accuracy on every task, trained or not
    train_s: float
    eval_s: float

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class TaskEnd:
    """A task finished: its row of the test accuracy matrix, and the state was checkpointed."""

    task: int  # 1-based
    test_accuracy: list[float]  # row `task` of the accuracy matrix, one value per task
    fisher_s: float | None = None  # time of the Fisher estimate after this task, if any
    frozen_fraction: float | None = None  # FIM: fraction of weights frozen so far
    checkpoint: str | None = None  # folder of the checkpoint written after this task

    def as_dict(self) -> dict:
        return asdict(self)


class StopRequested(Exception):
    """Raised inside the training loop when `Callback.should_stop()` returned True."""


class TrainingDiverged(Exception):
    """The training loss became NaN or infinite."""

    def __init__(self, task: int, epoch: int, loss: float):
        super().__init__(f"training loss became {loss} at task {task}, epoch {epoch}")
        self.task, self.epoch, self.loss = task, epoch, loss


@dataclass
class Callback:
    """Receives events from `train()`. Subclass and override what you need.

    `should_stop` is polled before every compiled training call (every batch, or every k
    batches where the learner runs several steps in one call: `EWC_STEPS_PER_CALL`, about
    0.1–0.25 s of work on 2 CPU cores); returning True ends the run with `StopRequested`
    after the current call (metrics already sent are kept).
    """

    def on_run_start(self, event: RunStart) -> None:
        pass

    def on_epoch_end(self, event: EpochEnd) -> None:
        pass

    def on_task_end(self, event: TaskEnd) -> None:
        pass

    def should_stop(self) -> bool:
        return False


@dataclass
class CallbackList(Callback):
    """Fans events out to several callbacks; stops when any of them asks."""

    callbacks: list[Callback] = field(default_factory=list)

    def on_run_start(self, event: RunStart) -> None:
        for cb in self.callbacks:
            cb.on_run_start(event)

    def on_epoch_end(self, event: EpochEnd) -> None:
        for cb in self.callbacks:
            cb.on_epoch_end(event)

    def on_task_end(self, event: TaskEnd) -> None:
        for cb in self.callbacks:
            cb.on_task_end(event)

    def should_stop(self) -> bool:
        return any(cb.should_stop() for cb in self.callbacks)
