"""Which device this worker trains on, as TensorFlow sees it."""

from __future__ import annotations

import logging

log = logging.getLogger("ewc.worker")


def detect_device() -> str:
    """A readable name of the device jobs run on: "GPU:0 (<name>)" or "CPU".

    Turns on memory growth for every visible GPU first (so TensorFlow does not grab all of
    the GPU's memory at start-up), or, for one of several slots (`ewc worker --slots N`),
    caps its memory (`worker.slots.gpu_memory_cap_mb`); this must run before TensorFlow
    initialises its devices.
    Imports TensorFlow (seconds).
    """
    import tensorflow as tf

    from worker.slots import gpu_memory_cap_mb

    gpus = tf.config.list_physical_devices("GPU")
    cap = gpu_memory_cap_mb() if gpus else None
    for gpu in gpus:
        try:
            if cap is not None:  # one of several slots on this device (worker/slots.py)
                config = tf.config.LogicalDeviceConfiguration(memory_limit=cap)
                tf.config.set_logical_device_configuration(gpu, [config])
            else:
                tf.config.experimental.set_memory_growth(gpu, True)
        except (RuntimeError, ValueError) as exc:  # devices already initialised
            log.warning("event=memory_growth_unavailable device=%s error=%r", gpu.name, str(exc))
    if not gpus:
        return "CPU"
    try:
        details = tf.config.experimental.get_device_details(gpus[0])
    except (RuntimeError, ValueError):
        details = {}
    name = details.get("device_name") or "GPU"
    more = f", {len(gpus)} visible" if len(gpus) > 1 else ""
    more += f", {cap} MiB cap" if cap is not None else ""
    return f"GPU:0 ({name}{more})"


def gpu_count() -> int:
    """Number of GPUs TensorFlow can see (imports TensorFlow)."""
    import tensorflow as tf

    return len(tf.config.list_physical_devices("GPU"))
