"""The protocol every continual-learning method implements.

A method is one file: its config model (a `MethodConfig`: pydantic, TF-free, so the API
validates specs with it and the CLI and the dashboard build their flags and form fields
from its fields) and its implementation (a `Method`, with TensorFlow taken from
`continual_core.lazy`), registered with one line in `continual_core/methods/__init__.py`.

`Learner` fires the hooks of every active method in registry order; a new method never
changes the loop. In the compiled training step (traced ONCE per run, so every variable a
hook uses must exist from `__init__` on: finishing a task changes values, never the graph):

    batch(x, y) -> (x, y)            the examples to train on (replay adds remembered ones)
    penalty(step) -> scalar | None   added to the loss inside the gradient tape (EWC, LwF)
    gradients(grads, step) -> grads  transform the gradients (FIM, IncDet, A-GEM)
    after_step(step)                 after the optimizer applied them (FIM, SI)

In Python, between steps:

    start_task(task)                 before the first epoch of task `task` (1-based)
    end_task(finished) -> report     after a task that has a later one: consolidate
                                     (importance, anchors, a buffer); numbers to report
    state() -> variables             checkpointed after every task, as a group named
                                     after the method (restored before a resume)

Compiled once per worker (`continual_core.compiled`): a worker keeps a learner whose graph
fits the next job and re-initialises it by assignment. A method takes part when it names
`values`, the config fields that do not shape the graph (read in Python, or held in a
variable the hooks read, never a Python number baked into the trace), and `reuse(fresh)`
takes the Python side of the method a fresh learner built for the new job (the learner
copies every variable). A method with `values = None` (the default) is never reused.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel

from continual_core.fields import Strict


class MethodConfig(Strict):
    """A method's options: the spec's `<name>` object (null/absent = the method is off).

    Field names (or aliases), defaults and descriptions become the `--<name>-<field>`
    flags, the dashboard's `<name>_<field>` inputs and the OpenAPI schema. `label` names
    the method on the form; `flag_help` is the help of the `--<name>` switch.
    """

    label: ClassVar[str] = ""
    flag_help: ClassVar[str] = ""

    def resolve(self, spec: BaseModel) -> None:
        """Fill defaults that depend on the rest of the validated spec (e.g. on its Fisher
        estimator). Called once per validation; raise ValueError("field: why") to refuse."""


@dataclass
class Step:
    """What the hooks of one training step see (tensors of the traced graph)."""

    x: Any  # the batch, after every `batch` hook and the augmentation
    y: Any  # its labels: classes, or with `heads: multi` output units (`continual_core.heads`)
    logits: Any = None  # the model's outputs on x (training mode), every unit (not masked)
    loss: Any = None  # the task loss (mean cross-entropy), before any penalty
    grads: list[Any] = field(default_factory=list)  # in after_step: what was applied


@dataclass
class FinishedTask:
    """A task that has just been trained (given to `end_task`).

    `importance(estimator, samples)` is a per-weight importance at the current weights,
    from `samples` training examples of this task, estimated once per task and estimator
    whatever the number of methods asking: `estimator` is the name of one of
    `continual_core.importance.ESTIMATORS` (`"fisher"`: the spec's Fisher estimator), or an
    estimator class a method brings.
    """

    index: int  # 1-based
    x: Any  # the task's training images (NumPy)
    y: Any  # their labels as the learner trains on them (`Step.y`)
    importance: Callable[[Any, int], list[Any]]


class Method:
    """Base of every method's implementation: every hook does nothing by default.

    Subclasses set `name` (the spec key), `Config` and, when they read an importance
    estimate, `estimators` (built with the learner, so their compiled functions are traced
    once per run).
    """

    name: ClassVar[str]
    Config: ClassVar[type[MethodConfig]]
    estimators: ClassVar[tuple[str, ...]] = ()
    #: Config fields that do not change the compiled graph (see the module docstring);
    #: None: a learner with this method is never reused for another job.
    values: ClassVar[frozenset[str] | None] = None

    def __init__(self, config: MethodConfig, learner: Any):
        """`learner` is the `Learner`: its `model`, `weights` (the trainable variables),
        `optimizer` and `spec` exist; create every variable the step hooks use here."""
        self.config = config

    # In the compiled step ---------------------------------------------------------------

    def batch(self, x: Any, y: Any) -> tuple[Any, Any]:
        return x, y

    def penalty(self, step: Step) -> Any | None:
        return None

    def gradients(self, grads: Sequence[Any], step: Step) -> Sequence[Any]:
        return grads

    def after_step(self, step: Step) -> None:
        return None

    # In Python ------------------------------------------------------------------------

    def start_task(self, task: int) -> None:
        return None

    def end_task(self, finished: FinishedTask) -> dict[str, float]:
        return {}

    def state(self) -> list[Any]:
        return []

    def reuse(self, fresh: Method) -> None:
        """Become `fresh`, this method as a fresh learner built it for another job of the
        same graph: the learner has copied every variable; take the Python side (config)."""
        self.config = fresh.config

    @classmethod
    def consolidates(cls) -> bool:
        """Whether this method does anything at the end of a task (the trainer times and
        reports the end of a task only when some active method does)."""
        return cls.end_task is not Method.end_task
