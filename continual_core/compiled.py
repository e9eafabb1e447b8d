"""Compile once per worker: a learner whose graph fits the next job is re-initialised by
assignment instead of rebuilt, so its compiled functions (training step, evaluation,
importance estimates) are not traced again.

Two jobs share a graph when their specs agree on everything but `GRAPH_FREE` fields and
each method's `values` (`continual_core.methods.base.Method.values`): the model, its widths,
the dataset (input shape, classes, the heads' layout), the Fisher estimator, the
augmentation, the set of active methods and their shape-giving options (a memory's
`buffer`). Every number the compiled functions read is a variable (Adam's learning rate,
EWC's λ, SI's c, MAS's λ, LwF's α and T, IncDet's threshold, A-GEM's reference batch).

Re-initialising: `Learner(spec)` is built for the job as `ewc run` builds it (the weights
drawn from the job's seed, Adam's zero state, each method's initial state; building traces
nothing, tf.function traces on first call), then every variable of it is assigned into the
cached learner, one to one, and each method and estimator takes the fresh one's Python side
(`reuse`). The job then runs exactly as a fresh run of its spec: the same graph, the same
values (tests/continual_core/test_compile_once.py compares results bit for bit).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any

import keras
import tensorflow as tf
from pydantic import BaseModel

from continual_core.learner import Learner
from continual_core.methods import METHODS
from continual_core.spec import ExperimentSpec

__all__ = ["GRAPH_FREE", "LearnerCache", "graph_key", "learner_variables", "worker_learners"]

#: Spec fields that never shape a compiled function: read in Python only (epochs, batch size:
#: the index tensors have no fixed length; reset_optimizer, joint: what is trained when),
#: held in a variable (learning_rate) or not read by the training core at all.
GRAPH_FREE = frozenset(
    {"seed", "epochs", "batch_size", "learning_rate", "reset_optimizer", "joint",
     "name", "tags", "priority", "device", "time_limit_s"}
)  # fmt: skip

#: Packages whose objects are leaves when looking for a method's variables (their own
#: variables are read through `variables`, never by walking their attributes).
_OPAQUE = ("tensorflow", "keras", "numpy", "pydantic", "builtins")


def graph_key(spec: ExperimentSpec) -> str | None:
    """What decides the compiled graphs of `spec`'s learner (JSON text), or None when a
    method does not declare its `values` (such a learner is never reused)."""
    methods = {}
    for name, config in spec.methods.items():
        values = METHODS[name].values
        if values is None:
            return None
        methods[name] = {k: v for k, v in config.model_dump().items() if k not in values}
    shape = {
        k: v for k, v in spec.to_json_dict().items() if k not in GRAPH_FREE and k not in methods
    }
    return json.dumps({"spec": shape, "methods": methods}, sort_keys=True, default=str)


def learner_variables(learner: Learner) -> list[Any]:
    """Every variable of `learner`, each once, in a fixed order: the model's, Adam's, the
    augmenter's, then those of each method and estimator (found in their attributes: lists,
    dicts, objects of their own, Keras layers, random generators' states)."""
    found: list[Any] = []
    seen: set[int] = set()

    def visit(obj: Any) -> None:
        if obj is None or id(obj) in seen:
            return
        if isinstance(obj, (tf.Variable, keras.Variable)):
            seen.add(id(obj))
            found.append(obj)
        elif isinstance(obj, tf.random.Generator):
            visit(obj.state)
        elif isinstance(obj, (keras.layers.Layer, keras.optimizers.Optimizer)):
            seen.add(id(obj))
            for v in obj.variables:
                visit(v)
        elif isinstance(obj, (list, tuple)):
            for item in obj:
                visit(item)
        elif isinstance(obj, dict):
            for item in obj.values():
                visit(item)
        elif _walkable(obj):
            seen.add(id(obj))
            for item in vars(obj).values():
                visit(item)

    for root in (learner.model, learner.optimizer, learner.augmenter,
                 *learner.methods.values(), *learner.estimators.values()):  # fmt: skip
        visit(root)
    return found


def _walkable(obj: Any) -> bool:
    """A plain object whose attributes may hold variables (a method's own state class)."""
    if not hasattr(obj, "__dict__") or callable(obj) or isinstance(obj, (type, BaseModel)):
        return False
    return type(obj).__module__.split(".")[0] not in _OPAQUE


def reusable(learner: Learner) -> bool:
    """Whether `learner` may be re-initialised for another job: every method names its
    `values` and every estimator can `reuse`."""
    return all(type(m).values is not None for m in learner.methods.values()) and all(
        callable(getattr(e, "reuse", None)) for e in learner.estimators.values()
    )


def reinitialise(cached: Learner, fresh: Learner) -> bool:
    """Make `cached` hold exactly `fresh`'s state (every variable assigned) and take its
    Python side (spec, each method's and estimator's `reuse`). False, with nothing changed,
    when their variables do not line up (then `cached` cannot serve the job)."""
    mine, theirs = learner_variables(cached), learner_variables(fresh)
    if len(mine) != len(theirs) or any(
        tuple(a.shape) != tuple(b.shape) or a.dtype != b.dtype for a, b in zip(mine, theirs)
    ):
        return False
    if list(cached.methods) != list(fresh.methods) or list(cached.estimators) != list(
        fresh.estimators
    ):
        return False
    for target, source in zip(mine, theirs):
        target.assign(_value(source))
    cached.spec = fresh.spec
    for name, method in cached.methods.items():
        method.reuse(fresh.methods[name])
    for key, estimator in cached.estimators.items():
        estimator.reuse(fresh.estimators[key])
    return True


def _value(variable: Any) -> Any:
    return variable.value if isinstance(variable, keras.Variable) else variable.read_value()


class LearnerCache:
    """The learners of one process by graph key, the `size` most recently used kept.

    `learner(spec)` returns a learner for a new run of `spec`, in the state a fresh
    `Learner(spec)` has: a kept one of the same graph re-initialised (a hit), or the fresh
    one, then kept (a miss). `enabled=False`: always the fresh one, nothing kept."""

    def __init__(self, size: int = 4, enabled: bool = True):
        self.size, self.enabled = max(1, size), enabled
        self._learners: OrderedDict[str, Learner] = OrderedDict()
        self.hits = self.misses = 0

    def learner(self, spec: ExperimentSpec) -> Learner:
        fresh = Learner(spec)
        key = graph_key(spec) if self.enabled else None
        if key is None or not reusable(fresh):
            return fresh
        cached = self._learners.pop(key, None)
        if cached is not None and reinitialise(cached, fresh):
            self.hits += 1
        else:
            cached = fresh
            self.misses += 1
        self._learners[key] = cached
        while len(self._learners) > self.size:
            self._learners.popitem(last=False)
        return cached

    def __len__(self) -> int:
        return len(self._learners)


_WORKER: LearnerCache | None = None


def worker_learners() -> LearnerCache:
    """This process's cache (a worker is one process per slot, running one job at a time)."""
    global _WORKER
    if _WORKER is None:
        _WORKER = LearnerCache()
    return _WORKER
