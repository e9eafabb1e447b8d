"""The registry of continual-learning methods: spec key → the method (its config model and
its implementation, one file each; see `continual_core.methods.base` for the hooks).

TF-free: the API process reads the config models from here (TensorFlow is imported only
when the worker builds an implementation). Adding a method is one new file and one
`register(...)` line below; a plug-in (or a test) may also call `register` at run time,
after which the spec accepts its key, `ewc run` has its flags and the dashboard its form.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from continual_core.methods.agem import AGEM
from continual_core.methods.base import FinishedTask, Method, MethodConfig, Step
from continual_core.methods.ewc import EWC
from continual_core.methods.fim import FIM
from continual_core.methods.incdet import IncDet
from continual_core.methods.lwf import LwF
from continual_core.methods.mas import MAS
from continual_core.methods.replay import Replay
from continual_core.methods.si import SI

__all__ = [
    "METHODS",
    "FinishedTask",
    "Method",
    "MethodConfig",
    "Step",
    "register",
    "registered",
    "unregister",
]

#: Spec key → method, in the order the learner fires their hooks.
METHODS: dict[str, type[Method]] = {}

#: Keys a method may not take: the spec's own fields would be shadowed.
RESERVED = frozenset(
    {"model", "dataset", "dataset_update", "splits", "epochs", "batch_size", "learning_rate",
     "fisher", "reset_optimizer", "augment", "seed", "synthetic", "name", "tags", "priority",
     "device", "time_limit_s", "heads", "hidden", "joint", "user_dataset"}
)  # fmt: skip


def register(method: type[Method]) -> type[Method]:
    """Make `method` available under `method.name` (usable as a class decorator)."""
    name = method.name
    if not name.isidentifier() or not name.islower() or name in RESERVED:
        raise ValueError(f"{name!r} cannot name a method (lower-case identifier, not a spec field)")
    if name in METHODS and METHODS[name] is not method:
        raise ValueError(f"a method named {name!r} is already registered")
    if not issubclass(method.Config, MethodConfig):
        raise TypeError(f"{method.__name__}.Config must be a MethodConfig")
    METHODS[name] = method
    return method


def unregister(name: str) -> None:
    """Remove a method registered at run time."""
    METHODS.pop(name, None)


@contextmanager
def registered(method: type[Method]) -> Iterator[type[Method]]:
    """`register(method)` for the duration of a `with` block (tests)."""
    register(method)
    try:
        yield method
    finally:
        unregister(method.name)


register(EWC)
register(FIM)
register(IncDet)
register(MAS)
register(LwF)
register(Replay)
register(AGEM)
register(SI)
