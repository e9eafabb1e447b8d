"""`continual_core.user_datasets`: a spec naming `user:<name>` (valid names only; no shape
until resolved, then checked on its shape like a built-in), and the loader (examples of
shape (D,), (H, W), (H, W, C) as (H, W, C); uint8 scaled to [0, 1], floats kept)."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from continual_core.datasets import DatasetUnavailable, load_dataset
from continual_core.spec import ExperimentSpec, validation_problems
from continual_core.user_datasets import (
    as_input_shape,
    inspect_npz,
    user_dataset_file,
)
from tests.fixtures.npz import blobs, npz_bytes

SHA = "ab" * 32


def resolved(shape=(8, 8, 1), classes=4, **spec) -> ExperimentSpec:
    info = {"checksum": SHA, "input_shape": list(shape), "num_classes": classes}
    return ExperimentSpec.model_validate({"dataset": "user:mine", "user_dataset": info, **spec})


def problems(**spec) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as exc:
        ExperimentSpec.model_validate(spec)
    return validation_problems(exc.value)


def test_a_spec_names_an_upload_by_a_valid_name() -> None:
    spec = ExperimentSpec.model_validate({"dataset": "user:my-set_1.v2", "dataset_update": "permute"})
    assert spec.dataset == "user:my-set_1.v2" and spec.user_dataset is None
    with pytest.raises(ValueError, match="not resolved yet"):
        _ = spec.input_shape
    [(field, msg)] = problems(dataset="user:no spaces")
    assert field == "dataset" and "is not a dataset name" in msg
    [(field, msg)] = problems(dataset="nope")
    assert field == "dataset" and "is not allowed; choose one of" in msg  # built-ins as before
    schema = ExperimentSpec.model_json_schema()["properties"]["dataset"]
    assert {"type": "string", "pattern": "^user:[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"} in schema["anyOf"]


def test_a_resolved_spec_has_the_upload_s_shape_and_is_checked_on_it() -> None:
    spec = resolved(dataset_update="increment", splits=2, epochs=2)
    assert spec.input_shape == (8, 8, 1) and spec.num_classes == 4
    assert ExperimentSpec.model_validate(spec.to_json_dict()) == spec  # stored and read back
    with pytest.raises(ValidationError, match="splits: 5 is more than the 4 classes of user:mine"):
        resolved(dataset_update="switch", splits=5, epochs=5)
    with pytest.raises(ValidationError, match="lenet needs inputs of at least 28x28, user:mine is 8x8"):
        resolved(model="lenet")
    assert resolved((28, 28, 1), model="lenet").input_shape == (28, 28, 1)
    info = resolved().user_dataset.model_dump()  # only the server's, and only for user:<name>
    assert ExperimentSpec.model_validate({"dataset": "digits", "user_dataset": info}).user_dataset is None


@pytest.mark.parametrize(("example", "shape"), [((20,), (1, 20, 1)), ((6, 5), (6, 5, 1)),
                                                 ((4, 4, 3), (4, 4, 3))])  # fmt: skip
def test_example_shapes_become_height_width_channels(example, shape) -> None:
    assert as_input_shape(example) == shape


def test_the_loader_reads_the_placed_file(tmp_path) -> None:
    arrays = blobs(shape=(6, 5), classes=3, train=50, test=20, dtype=np.uint8)
    path = user_dataset_file(tmp_path, SHA)
    path.parent.mkdir(parents=True)
    path.write_bytes(npz_bytes(**arrays))
    summary = inspect_npz(path)
    assert (summary.example_shape, summary.input_shape, summary.num_classes) == ((6, 5), (6, 5, 1), 3)
    data = load_dataset(resolved((6, 5, 1), 3, seed=1), tmp_path)
    assert data.train_x.shape == (40, 6, 5, 1) and data.val_x.shape == (10, 6, 5, 1)
    assert data.test_x.dtype == np.float32 and 0.0 <= data.test_x.min() and data.test_x.max() <= 1.0
    np.testing.assert_allclose(data.test_x[..., 0], arrays["x_test"] / 255.0, rtol=1e-6)
    assert data.num_classes == 3 and data.test_y.dtype == np.int32
    floats = {**arrays, "x_train": arrays["x_train"] * 10.0, "x_test": arrays["x_test"] - 100.0}
    path.write_bytes(npz_bytes(**floats))  # any other dtype is used as it is
    data = load_dataset(resolved((6, 5, 1), 3), tmp_path)
    np.testing.assert_allclose(data.test_x[..., 0], floats["x_test"], rtol=1e-6)
    with pytest.raises(DatasetUnavailable, match="not the one the spec was resolved for"):
        load_dataset(resolved((6, 5, 1), 4), tmp_path)
    with pytest.raises(DatasetUnavailable, match="the worker downloads it"):
        load_dataset(resolved(), tmp_path / "elsewhere")
    unresolved = ExperimentSpec.model_validate({"dataset": "user:mine"})
    with pytest.raises(DatasetUnavailable, match="not `ewc run`"):
        load_dataset(unresolved, tmp_path)
