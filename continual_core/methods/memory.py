"""An episodic memory of past training examples, shared by experience replay and A-GEM.

The memory is fixed-size TensorFlow state that exists from the start of a run, so the
compiled step that reads it is traced once: `images` (capacity × the input shape),
`labels`, `count` (the valid slots are the first `count`), `seen` (examples seen so far,
per class) and the sampler's random state. It is filled in Python at the end of a task
(NumPy, with a generator seeded by (seed, task)):

- `reservoir`: classic reservoir sampling (Vitter's algorithm R) over every training
  example seen so far: after n examples, each of them is in the memory with probability
  capacity / n, whatever task it came from.
- `balanced`: an equal share per class seen so far (capacity // classes, the remainder to
  the lowest labels); each class's share is a reservoir sample of that class's examples.
  When a new class shrinks the shares, each class keeps a uniform random subset.

In the step, `sample(n)` draws n valid slots uniformly with replacement.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from continual_core.fields import PositiveInt
from continual_core.lazy import tf
from continual_core.methods.base import MethodConfig
from continual_core.seeds import seed_for

Strategy = Literal["reservoir", "balanced"]
STRATEGIES: tuple[str, ...] = ("reservoir", "balanced")

#: Random streams (see `continual_core.seeds.seed_for`): which examples enter the memory
#: at the end of task k, and which slots the steps of task k draw.
FILL_STREAM, SAMPLE_STREAM = 700, 701


class MemoryConfig(MethodConfig):
    """The options of a method that keeps an episodic memory."""

    label: ClassVar[str] = ""

    buffer: PositiveInt = Field(
        default=500, le=100_000, description="Examples kept in the episodic memory."
    )
    strategy: Strategy = Field(
        default="reservoir",
        description="Which examples the memory keeps: reservoir (a uniform sample of every "
        "example seen) or balanced (an equal share per class seen so far).",
    )


def reservoir_slots(
    filled: int, capacity: int, seen: int, new: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Reservoir sampling of `new` further stream elements into `capacity` slots of which
    `filled` hold some of the `seen` elements so far. Returns (slots, items): new element
    items[i] (0-based among the new ones) ends up in slot slots[i]; the others are dropped.

    Free slots are taken first; after that the element with 0-based stream index n replaces
    a uniformly drawn slot with probability capacity / (n + 1) (a later writer wins)."""
    i = np.arange(new)
    free = max(0, capacity - filled)
    target = np.where(i < free, filled + i, -1)
    stream = seen + i
    drawn = np.floor(rng.random(new) * (stream + 1)).astype(np.int64)
    replace = (i >= free) & (drawn < capacity)
    target = np.where(replace, drawn, target)
    kept = np.flatnonzero(target >= 0)
    slots = target[kept]
    # the last writer of each slot wins: unique over the reversed order keeps the last one
    _, last = np.unique(slots[::-1], return_index=True)
    pick = kept[::-1][last]
    return target[pick], pick


def class_quota(capacity: int, classes: np.ndarray) -> dict[int, int]:
    """capacity // len(classes) slots per class, the remainder to the lowest labels."""
    share, extra = divmod(capacity, len(classes))
    return {int(c): share + (1 if k < extra else 0) for k, c in enumerate(np.sort(classes))}


def fill(
    images: np.ndarray,
    labels: np.ndarray,
    seen: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    capacity: int,
    strategy: str,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The memory (images, labels: its valid part) and per-class `seen` counts after the
    examples (x, y) were streamed through it (NumPy; nothing is modified in place)."""
    seen_after = seen + np.bincount(y, minlength=len(seen)).astype(seen.dtype)
    if strategy == "reservoir":
        pool_x = np.zeros((capacity, *x.shape[1:]), np.float32)
        pool_y = np.zeros(capacity, np.int32)
        pool_x[: len(labels)], pool_y[: len(labels)] = images, labels
        slots, items = reservoir_slots(len(labels), capacity, int(seen.sum()), len(y), rng)
        pool_x[slots], pool_y[slots] = x[items], y[items]
        valid = min(capacity, len(labels) + len(y))
        return pool_x[:valid], pool_y[:valid], seen_after
    parts_x, parts_y = [], []
    for c, quota in class_quota(capacity, np.flatnonzero(seen_after)).items():
        old = np.flatnonzero(labels == c)
        if len(old) > quota:  # a uniform subset of a uniform sample is a uniform sample
            old = np.sort(rng.permutation(old)[:quota])
        new = np.flatnonzero(y == c)
        pool = np.zeros((quota, *x.shape[1:]), np.float32)
        pool[: len(old)] = images[old]
        slots, items = reservoir_slots(len(old), quota, int(seen[c]), len(new), rng)
        pool[slots] = x[new[items]]
        valid = min(quota, len(old) + len(new))
        parts_x.append(pool[:valid])
        parts_y.append(np.full(valid, c, np.int32))
    return np.concatenate(parts_x), np.concatenate(parts_y), seen_after


class EpisodicMemory:
    """The memory's TensorFlow state, its end-of-task fill and its in-graph sampler."""

    def __init__(self, config: MemoryConfig, spec: Any, classes: int):
        """`classes`: the number of labels the learner trains on (its output units: with
        one head per task, a class of each task's head is a class of its own)."""
        self.capacity, self.strategy, self.spec = int(config.buffer), config.strategy, spec
        shape = (self.capacity, *spec.input_shape)
        self.images = tf.Variable(
            tf.zeros(shape, tf.float32), trainable=False, name="memory_images"
        )
        self.labels = tf.Variable(
            tf.zeros((self.capacity,), tf.int32), trainable=False, name="memory_labels"
        )
        self.count = tf.Variable(0, dtype=tf.int32, trainable=False, name="memory_count")
        self.seen = tf.Variable(tf.zeros((classes,), tf.int64), trainable=False, name="memory_seen")
        self.sampler = tf.random.Generator.from_seed(seed_for(spec, 1, SAMPLE_STREAM))

    @property
    def state(self) -> list[Any]:
        """Every variable of the memory, the sampler's state included (for checkpoints)."""
        return [self.images, self.labels, self.count, self.seen, self.sampler.state]

    def reuse(self, fresh: EpisodicMemory) -> None:
        """For another job of the same graph (same capacity): its spec and strategy."""
        self.strategy, self.spec = fresh.strategy, fresh.spec

    def start_task(self, task: int) -> None:
        """The sampler restarts from its (seed, task) state."""
        self.sampler.reset_from_seed(seed_for(self.spec, task, SAMPLE_STREAM))

    def add(self, x: np.ndarray, y: np.ndarray, task: int) -> None:
        """Stream a finished task's training examples through the memory."""
        n = int(self.count.numpy())
        images, labels, seen = fill(
            self.images.numpy()[:n], self.labels.numpy()[:n], self.seen.numpy(),
            np.asarray(x, np.float32), np.asarray(y, np.int32), self.capacity, self.strategy,
            np.random.default_rng(seed_for(self.spec, task, FILL_STREAM)),
        )  # fmt: skip
        full_x = np.zeros(self.images.shape, np.float32)
        full_y = np.zeros(self.labels.shape, np.int32)
        full_x[: len(labels)], full_y[: len(labels)] = images, labels
        self.images.assign(full_x)
        self.labels.assign(full_y)
        self.count.assign(len(labels))
        self.seen.assign(seen)

    def sample(self, n: Any) -> tuple[Any, Any]:
        """n examples drawn uniformly with replacement from the valid slots (in the step;
        only call it where `count > 0`)."""
        idx = self.sampler.uniform(tf.reshape(n, [1]), 0, self.count, dtype=tf.int32)
        return tf.gather(self.images, idx), tf.gather(self.labels, idx)

    def when_filled(self, use: Any, otherwise: Any) -> Any:
        """`use()` once the memory holds an example, else `otherwise()` (one graph: a
        `tf.cond`, so the step neither retraces nor samples while the memory is empty)."""
        return tf.cond(self.count > 0, use, otherwise)
