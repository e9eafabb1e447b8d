"""The seeds of every random stream of a run, derived from (spec.seed, task, stream)."""

from __future__ import annotations

import numpy as np


def seed_for(spec, task: int, stream: int) -> int:
    """A 31-bit seed derived from (spec.seed, task, stream): every random stream of a task
    restarts from it, so a run resumed at a task boundary replays exactly.

    Streams in use: 0 Keras' global seed, 1 the importance estimate's sample, 2 its labels,
    100 + i the i-th Keras seed generator, 1000 + e the order of epoch e.
    """
    return int(np.random.SeedSequence([spec.seed, task, stream]).generate_state(1)[0] >> 1)
