"""Checkpoints of the complete training state after each task.

`checkpoint_dir/task-{k}/` holds `state.npz` (every variable: model weights incl. batch-norm
statistics and seed-generator states, Adam's moments and step count, and each active
method's state as a group named after it: EWC sums, FIM masks and frozen values, ...) and
`history.json` (the spec, epoch rows, accuracy-matrix rows, timings).
Random streams are derived from (seed, task), so nothing else is needed to replay the rest
of the run exactly. A checkpoint is written to a temporary folder and renamed into place,
so a crash never leaves a half-written `task-{k}/`.

`CheckpointWriter` writes one behind the training: the state is copied to NumPy and the
history to JSON text at once (what the checkpoint holds is the state at the task's end),
the files are written by a thread while the next task trains; `join` waits for it (and
raises what the write raised). The folder still appears only whole, by the rename.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np

#: Spec fields that do not change training (a checkpoint stays valid if they differ).
_BOOKKEEPING = ("name", "tags", "priority", "device", "time_limit_s")


class CheckpointMismatch(RuntimeError):
    """A checkpoint does not fit the run it should resume (different spec or model)."""


def training_fields(spec_json: dict) -> dict:
    """The part of a spec's JSON that decides what is trained."""
    return {k: v for k, v in spec_json.items() if k not in _BOOKKEEPING}


def comparable_spec(spec_json: dict) -> dict:
    """`training_fields` of the spec as this version reads it: a checkpoint written before
    an upgrade added spec fields (their defaults) or changed how one is spelled still fits
    the same job. A spec this version cannot read is compared as it was written."""
    from pydantic import ValidationError

    from continual_core.spec import ExperimentSpec

    try:
        spec_json = ExperimentSpec.model_validate(spec_json).to_json_dict()
    except ValidationError:
        pass
    return training_fields(spec_json)


def save_checkpoint(checkpoint_dir: Path, task: int, state: dict[str, list], history: dict) -> Path:
    """Write `state` (group → variables) and `history` (JSON) to checkpoint_dir/task-{task}/
    atomically; returns the folder."""
    return write_checkpoint(checkpoint_dir, task, snapshot(state), json.dumps({"task": task, **history}))


def snapshot(state: dict[str, list]) -> dict[str, np.ndarray]:
    """The arrays of a checkpoint's `state.npz`, copied now (`group/0000`, ... per variable)."""
    return {
        f"{group}/{i:04d}": np.array(v.numpy() if hasattr(v, "numpy") else v, copy=True)
        for group, variables in state.items()
        for i, v in enumerate(variables)
    }


def write_checkpoint(checkpoint_dir: Path, task: int, arrays: dict[str, np.ndarray], history: str) -> Path:
    """Write `arrays` (`snapshot`) and the `history` JSON text to checkpoint_dir/task-{task}/
    atomically (a temporary folder renamed into place); returns the folder."""
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    final = checkpoint_dir / f"task-{task}"
    tmp = Path(tempfile.mkdtemp(prefix=f".task-{task}-", dir=checkpoint_dir))
    try:
        np.savez(tmp / "state.npz", **arrays)
        (tmp / "history.json").write_text(history)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


class CheckpointWriter:
    """Checkpoints written by a thread, one at a time: `submit` snapshots the state now and
    starts the write (after joining the previous one); `join` waits for the write in flight
    and raises what it raised. A run must `join` before it returns or raises."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def submit(self, checkpoint_dir: Path, task: int, state: dict[str, list], history: dict) -> None:
        self.join()
        arrays, text = snapshot(state), json.dumps({"task": task, **history})
        self._thread = threading.Thread(
            target=self._write, args=(checkpoint_dir, task, arrays, text),
            name=f"checkpoint-task-{task}", daemon=True,
        )  # fmt: skip
        self._thread.start()

    def _write(self, *args: Any) -> None:
        try:
            write_checkpoint(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to the training thread by join()
            self._error = exc

    def join(self) -> None:
        """Wait for the write in flight (if any); raise its error, once."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        error, self._error = self._error, None
        if error is not None:
            raise error


def latest_checkpoint(checkpoint_dir: Path) -> Path | None:
    """The complete task-{k}/ folder with the highest k, or None."""
    if not checkpoint_dir.is_dir():
        return None
    found = []
    for path in checkpoint_dir.glob("task-*"):
        suffix = path.name.removeprefix("task-")
        if suffix.isdigit() and (path / "history.json").is_file() and (path / "state.npz").is_file():
            found.append((int(suffix), path))
    return max(found)[1] if found else None


def load_checkpoint(path: Path, state: dict[str, list], spec_json: dict) -> dict:
    """Assign the saved values to the variables of `state`; returns the saved history.

    Raises `CheckpointMismatch` when the checkpoint was made for another spec or its
    variables do not match in number or shape.
    """
    history = json.loads((path / "history.json").read_text())
    if comparable_spec(history.get("spec", {})) != comparable_spec(spec_json):
        raise CheckpointMismatch(
            f"{path} was written for a different experiment spec; use another checkpoint "
            "folder or resume=False"
        )
    with np.load(path / "state.npz") as saved:
        for group, variables in state.items():
            keys = sorted(k for k in saved.files if k.startswith(f"{group}/"))
            if len(keys) != len(variables):
                raise CheckpointMismatch(
                    f"{path}: {group} has {len(keys)} saved variables, the run has {len(variables)}"
                )
            for key, v in zip(keys, variables):
                value = saved[key]
                if tuple(value.shape) != tuple(v.shape):
                    raise CheckpointMismatch(f"{path}: {key} has shape {value.shape}, expected {v.shape}")
                v.assign(value)
    return history
