"""A job checkpointed by an earlier version resumes after the upgrade.

`tests/fixtures/checkpoints_before_methods/` holds task-1 checkpoints written by the
version before methods became plug-ins and the spec gained `heads`, `hidden`, `joint`,
`replay`, ... (commit aededc4: `train()` of the two specs in `results.json`, then every
checkpoint but task-1 deleted), with the accuracy matrix of each uninterrupted run. Their
`history.json` holds the spec as that version wrote it, without the new fields; today's
version reads it with its defaults, sees the same job, and ends bit-identically.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from continual_core.checkpoint import CheckpointMismatch, comparable_spec
from continual_core.spec import ExperimentSpec
from continual_core.trainer import train
from tests.continual_core.test_trainer import Recorder

FIXTURES = Path(__file__).parents[1] / "fixtures" / "checkpoints_before_methods"
RESULTS = json.loads((FIXTURES / "results.json").read_text())


@pytest.mark.parametrize("name", sorted(RESULTS))
def test_checkpoint_of_the_previous_version_resumes_bit_identically(name: str, tmp_path: Path) -> None:
    old = RESULTS[name]
    ckpt = tmp_path / "ckpt"
    shutil.copytree(FIXTURES / name, ckpt)
    written = json.loads((ckpt / "task-1" / "history.json").read_text())["spec"]
    assert "heads" not in written and "hidden" not in written  # really the old shape
    spec = ExperimentSpec.model_validate(old["spec"])  # how the worker reads the stored job
    rec = Recorder()
    resumed = train(spec, dataset_cache=tmp_path, callback=rec, checkpoint_dir=ckpt)
    assert rec.starts[0].first_task == 2  # resumed, not retrained from scratch
    assert resumed["accuracy_matrix"] == old["accuracy_matrix"]


def test_a_really_different_spec_is_still_refused(tmp_path: Path) -> None:
    old = RESULTS["ewc"]
    ckpt = tmp_path / "ckpt"
    shutil.copytree(FIXTURES / "ewc", ckpt)
    other = ExperimentSpec.model_validate({**old["spec"], "ewc": {"lambda": 10.0}})
    with pytest.raises(CheckpointMismatch, match="different experiment spec"):
        train(other, dataset_cache=tmp_path, checkpoint_dir=ckpt)


def test_a_spec_this_version_cannot_read_is_compared_as_written() -> None:
    assert comparable_spec({"model": "no-such-model", "name": "x"}) == {"model": "no-such-model"}
