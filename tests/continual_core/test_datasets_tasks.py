"""Dataset loaders on prepared cache folders (real file formats) and the task streams."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from continual_core.datasets import DatasetUnavailable, load_dataset
from continual_core.spec import ExperimentSpec
from continual_core.tasks import class_groups, make_tasks


def _write_cifar_pickle(path: Path, n: int, label_key: bytes, classes: int, rng) -> None:
    data = rng.integers(0, 256, (n, 3 * 32 * 32), dtype=np.uint8)
    labels = list(rng.integers(0, classes, n))
    with open(path, "wb") as f:
        pickle.dump({b"data": data, label_key: labels}, f)


def test_mnist_npz_in_keras_format(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "mnist.npz",
             x_train=rng.integers(0, 256, (50, 28, 28), dtype=np.uint8), y_train=rng.integers(0, 10, 50, dtype=np.uint8),
             x_test=rng.integers(0, 256, (20, 28, 28), dtype=np.uint8), y_test=rng.integers(0, 10, 20, dtype=np.uint8))
    data = load_dataset(ExperimentSpec(dataset="mnist"), tmp_path)
    assert data.train_x.shape == (40, 28, 28, 1) and data.val_x.shape == (10, 28, 28, 1)
    assert data.test_x.shape == (20, 28, 28, 1) and data.train_x.dtype == np.float32
    assert 0.0 <= data.train_x.min() and data.train_x.max() <= 1.0 and data.train_x.max() > 0.9


def test_cifar10_and_cifar100_pickles(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    c10 = tmp_path / "cifar-10-batches-py"
    c10.mkdir()
    for i in range(1, 6):
        _write_cifar_pickle(c10 / f"data_batch_{i}", 6, b"labels", 10, rng)
    _write_cifar_pickle(c10 / "test_batch", 7, b"labels", 10, rng)
    data = load_dataset(ExperimentSpec(model="cifarnet", dataset="cifar10"), tmp_path)
    assert data.train_x.shape == (24, 32, 32, 3) and data.val_x.shape == (6, 32, 32, 3)
    assert data.test_x.shape == (7, 32, 32, 3)
    # channels-last exactly as Keras: pixel (0, 0) of channel c is data[c * 1024]
    with open(c10 / "test_batch", "rb") as f:
        raw = pickle.load(f)
    assert np.allclose(data.test_x[0, 0, 0], raw[b"data"][0][[0, 1024, 2048]] / 255.0)
    c100 = tmp_path / "cifar-100-python"
    c100.mkdir()
    _write_cifar_pickle(c100 / "train", 10, b"fine_labels", 100, rng)
    _write_cifar_pickle(c100 / "test", 5, b"fine_labels", 100, rng)
    data = load_dataset(ExperimentSpec(model="cifarnet", dataset="cifar100"), tmp_path)
    assert data.train_x.shape == (8, 32, 32, 3) and data.num_classes == 100


@pytest.mark.parametrize(("dataset", "file"), [("mnist", "mnist.npz"), ("cifar10", "cifar-10-python.tar.gz")])
def test_missing_real_dataset_says_what_to_place_where(
    tmp_path: Path, dataset: str, file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a download that fails for sure (nothing listens on port 9), even on a machine online
    import continual_core.datasets as ds

    monkeypatch.setattr(ds, "MNIST_ORIGIN", "http://127.0.0.1:9/mnist.npz")
    monkeypatch.setattr(ds, "CIFAR10_ORIGIN", "http://127.0.0.1:9/cifar-10-python.tar.gz")
    spec = ExperimentSpec(model="cifarnet" if dataset == "cifar10" else "mlp", dataset=dataset)
    with pytest.raises(DatasetUnavailable) as err:
        load_dataset(spec, tmp_path)
    assert f"place {file}" in str(err.value) and str(tmp_path / file) in str(err.value)
    assert "http://127.0.0.1:9/" in str(err.value)


def test_offline_datasets_shapes_and_seeded_split(tmp_path: Path) -> None:
    d = load_dataset(ExperimentSpec(dataset="mnist-5k"), tmp_path)
    assert (len(d.train_x), len(d.val_x), len(d.test_x)) == (3200, 800, 1000)
    d2 = load_dataset(ExperimentSpec(dataset="mnist-5k"), tmp_path)  # from the npz cache now
    assert np.array_equal(d.train_y, d2.train_y) and np.array_equal(d.test_x, d2.test_x)
    g = load_dataset(ExperimentSpec(dataset="digits"), tmp_path)
    assert g.train_x.shape[1:] == (8, 8, 1) and len(g.test_x) == 359 and g.train_x.max() <= 1.0
    other = load_dataset(ExperimentSpec(dataset="digits", seed=1), tmp_path)
    assert not np.array_equal(g.train_y, other.train_y)
    s = load_dataset(ExperimentSpec(dataset="synthetic", synthetic={"height": 5, "width": 6, "channels": 3,
                                                                   "classes": 4, "train_size": 40, "test_size": 12}), tmp_path)
    assert s.train_x.shape == (32, 5, 6, 3) and set(s.train_y) <= {0, 1, 2, 3}


def test_class_groups_follow_array_split() -> None:
    assert class_groups(10, 3) == [(0, 1, 2, 3), (4, 5, 6), (7, 8, 9)]


def test_increment_and_switch_streams(tmp_path: Path) -> None:
    inc = make_tasks(spec := ExperimentSpec(dataset="digits", dataset_update="increment", splits=3, epochs=3),
                     load_dataset(spec, tmp_path))
    assert [t.classes for t in inc] == [(0, 1, 2, 3), tuple(range(7)), tuple(range(10))]
    assert set(inc[0].train_y) == {0, 1, 2, 3} and set(inc[0].test_y) == {0, 1, 2, 3}
    sw = make_tasks(spec := ExperimentSpec(dataset="digits", dataset_update="switch", splits=3, epochs=3),
                    load_dataset(spec, tmp_path))
    assert [set(t.val_y) for t in sw] == [{0, 1, 2, 3}, {4, 5, 6}, {7, 8, 9}]


def test_permute_stream_identity_first_and_shared_permutation(tmp_path: Path) -> None:
    spec = ExperimentSpec(dataset="digits", dataset_update="permute", splits=3, epochs=3)
    data = load_dataset(spec, tmp_path)
    tasks = make_tasks(spec, data)
    assert tasks[0].permutation is None and np.array_equal(tasks[0].train_x, data.train_x)
    perm = tasks[1].permutation
    assert perm is not None and not np.array_equal(perm, np.arange(64))
    assert not np.array_equal(perm, tasks[2].permutation)
    for split in ("train", "val", "test"):
        x = getattr(data, f"{split}_x").reshape(-1, 64)
        assert np.array_equal(getattr(tasks[1], f"{split}_x").reshape(-1, 64), x[:, perm])
        assert np.array_equal(getattr(tasks[1], f"{split}_y"), getattr(data, f"{split}_y"))
    again = make_tasks(spec, data)
    assert np.array_equal(again[2].permutation, tasks[2].permutation)


@pytest.mark.parametrize("update", ["permute", "increment"])
def test_a_long_stream_keeps_one_copy_of_the_images(tmp_path: Path, update: str) -> None:
    """Tasks build their arrays when read: 10 tasks do not hold 10 copies of the dataset."""
    import tracemalloc

    spec = ExperimentSpec(dataset="digits", dataset_update=update, splits=10, epochs=10)
    data = load_dataset(spec, tmp_path)
    one_copy = data.train_x.nbytes + data.val_x.nbytes + data.test_x.nbytes
    tracemalloc.start()
    tasks = make_tasks(spec, data)
    held, _peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(tasks) == 10
    assert held < one_copy / 10, f"make_tasks kept {held} bytes for a {one_copy}-byte dataset"
    x, y = tasks[9].split("train")  # built on demand, and right
    assert x.shape == data.train_x.shape if update == "permute" else set(np.unique(y)) == set(range(10))
