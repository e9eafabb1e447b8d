"""The settings and probes of the learner's compiled training functions
(`continual_core.learner`): `EWC_XLA` and `EWC_STEPS_PER_CALL`, read from the environment
when a learner is built (never from the service's settings: `continual_core` reads no
configuration of ours), how many steps one compiled call takes, and whether a jit-compiled
function lowers to XLA.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import keras
import tensorflow as tf


def has_conv(model: keras.Model) -> bool:
    return any(isinstance(layer, keras.layers.Conv2D) for layer in model.layers)


def use_xla(model: keras.Model) -> bool:
    """Whether `EWC_XLA` is "1" and the model has no convolution."""
    return os.environ.get("EWC_XLA", "0") == "1" and not has_conv(model)


#: "auto": the FLOPs one compiled call of the loop may take (≈ 0.1–0.25 s on 2 CPU cores).
CALL_FLOPS = 5e9


def steps_per_call_setting() -> int:
    """`EWC_STEPS_PER_CALL`: a number ≥ 1, or 0 for "auto" (the default)."""
    value = os.environ.get("EWC_STEPS_PER_CALL", "auto").strip().lower()
    if value == "auto":
        return 0
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"EWC_STEPS_PER_CALL must be 'auto' or a whole number ≥ 1, got {value!r}")
    return int(value)


def lowers(fn: Any, *args: tf.Tensor) -> bool:
    """Whether the jit-compiled tf.function `fn` lowers to XLA on `args` (nothing runs)."""
    try:  # on the device tensors go to (without a name it draws an unseeded number)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "device_name is being deprecated"
            fn.experimental_get_compiler_ir(*args)(device_name=args[0].device)
    except (ValueError, tf.errors.InvalidArgumentError, tf.errors.UnimplementedError):
        return False
    return True


def call_steps_for(setting: int, conv: bool, weights: int, batch: int) -> int:
    """Steps per compiled call for batches of `batch`: `setting` if ≥ 1; with "auto" (0) 1
    for a model with convolutions (the loop gains nothing there on CPU, and a call must stay
    short for a stop to be prompt), else as many as take about `CALL_FLOPS` (a step ≈ 3 ×
    forward ≈ 6 FLOPs per weight and example): the mlp's whole epoch of mnist-5k."""
    if setting:
        return setting
    if conv:
        return 1
    return max(1, int(CALL_FLOPS // (6 * weights * batch)))
