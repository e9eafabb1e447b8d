"""A worker's jobs find a dataset file read (`continual_core.datasets.kept_files`).

`StreamCache` (the streams of a worker's jobs) loads a new stream within `kept_files`: a
sweep of seeds reads mnist-5k's file once, not once per job; each stream is still exactly
what a fresh `load_dataset` gives, a replaced file is read again, and outside it nothing is
kept.
"""

from __future__ import annotations

import numpy as np
import pytest

from continual_core import datasets
from continual_core.datasets import load_dataset
from continual_core.spec import ExperimentSpec
from continual_core.tasks import StreamCache


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """A dataset folder with a mnist-5k file of its own, and a count of `np.load` calls."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (5000, 784), dtype=np.uint8)
    np.savez_compressed(tmp_path / "mnist-5k.npz", x=x, y=rng.integers(0, 10, 5000, dtype=np.uint8))
    monkeypatch.setattr(datasets, "_kept", type(datasets._kept)())
    reads = []
    real = np.load

    def counted(path, *args, **kwargs):
        reads.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(np, "load", counted)
    return tmp_path, reads


def spec(seed: int) -> ExperimentSpec:
    return ExperimentSpec.model_validate(
        {"dataset": "mnist-5k", "dataset_update": "permute", "splits": 3, "seed": seed}
    )


def test_a_sweep_of_seeds_reads_the_file_once_and_gets_what_a_fresh_load_gives(folder):
    path, reads = folder
    streams = StreamCache()
    for seed in (1, 2, 3):
        stream = streams.stream(spec(seed), path, load_dataset)
        fresh = load_dataset(spec(seed), path)  # outside kept_files: a read of its own
        for name in ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y"):
            assert np.array_equal(getattr(stream.data, name), getattr(fresh, name)), name
    assert streams.misses == 3
    assert len(reads) == 1 + 3  # the streams' one read, and each fresh load's
    kept = next(iter(datasets._kept.values()))
    assert not kept["x"].flags.writeable


def test_a_replaced_file_is_read_again(folder):
    path, reads = folder
    streams = StreamCache()
    streams.stream(spec(1), path, load_dataset)
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (5000, 784), dtype=np.uint8)
    np.savez_compressed(path / "mnist-5k.npz", x=x, y=np.zeros(5000, np.uint8))
    stream = streams.stream(spec(2), path, load_dataset)
    assert len(reads) == 2
    assert not stream.data.train_y.any()  # the new file's labels
