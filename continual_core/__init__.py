"""EWC Server's training core: continual learning (EWC, FIM, IncDet) on TensorFlow/Keras.

`train`, `ExperimentSpec` and the events are exported lazily: importing `continual_core`
(or `continual_core.spec`) does not import TensorFlow; `continual_core.train` does, on
first access.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "train": "continual_core.trainer",
    "ExperimentSpec": "continual_core.spec",
    "Callback": "continual_core.events",
    "CallbackList": "continual_core.events",
    "RunStart": "continual_core.events",
    "EpochEnd": "continual_core.events",
    "TaskEnd": "continual_core.events",
    "StopRequested": "continual_core.events",
    "TrainingDiverged": "continual_core.events",
    "DatasetUnavailable": "continual_core.datasets",
    "CheckpointMismatch": "continual_core.checkpoint",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'continual_core' has no attribute {name!r}")
