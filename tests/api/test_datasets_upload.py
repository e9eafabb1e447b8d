"""`POST /v1/datasets` refuses every malformed upload with its own message: a 422 naming
the form field (`file`, `name`) and what is wrong, 409 for a taken name, 413 for a file
over `EWC_MAX_DATASET_MB` (whether the body cap or the file's own count catches it), 415
for a body that is not a multipart form. Validation only: SQLite (the rows are tested on
both databases in test_datasets_api.py)."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from tests.fixtures.npz import blobs, npz_bytes, upload

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def _zip_of_text() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("readme.txt", "not an array")
    return buf.getvalue()


def _with(**changes):
    arrays = blobs(shape=(4, 4), classes=3, train=30, test=12)
    arrays.update(changes)
    return {k: v for k, v in arrays.items() if v is not None}


GOOD = blobs(shape=(4, 4), classes=3, train=30, test=12)
NAN = GOOD["x_train"].copy()
NAN[3, 1, 1] = np.nan
INF = GOOD["x_test"].copy()
INF[0, 0, 0] = np.inf

#: (case, file bytes, words the 422 message holds)
BAD_FILES = [
    ("not a zip", b"\x93NUMPY not really", ["not an .npz archive", "not even a zip"]),
    ("zip, not npz", _zip_of_text(), ["zip but not an .npz", "readme.txt"]),
    ("missing x_test", npz_bytes(**_with(x_test=None)), ["missing array 'x_test'"]),
    ("missing y_train", npz_bytes(**_with(y_train=None)), ["missing array 'y_train'"]),
    ("unexpected array", npz_bytes(**_with(X_val=np.zeros(3))), ["unexpected array 'X_val'"]),
    ("x/y lengths", npz_bytes(**_with(y_train=GOOD["y_train"][:-1])),
     ["y_train has 29 labels", "x_train has 30 examples"]),
    ("example shapes", npz_bytes(**_with(x_test=np.zeros((12, 5, 4), np.float32))),
     ["x_train examples have shape (4, 4)", "x_test examples have (5, 4)"]),
    ("non-numeric x", npz_bytes(**_with(x_train=np.array([["a"] * 4] * 30)),), ["x_train has dtype <U1",
     "inputs must be numbers"]),
    ("bool x", npz_bytes(**_with(x_test=np.zeros((12, 4, 4), bool))), ["x_test has dtype bool"]),
    ("non-integer y", npz_bytes(**_with(y_test=GOOD["y_test"].astype(np.float32))),
     ["y_test has dtype float32", "labels must be integers"]),
    ("2-D labels", npz_bytes(**_with(y_train=np.zeros((30, 2), np.int64))),
     ["y_train has shape (30, 2)"]),
    ("object array", npz_bytes(**_with(class_names=np.array(["a", 1, None], dtype=object))),
     ["class_names is an object array (a pickle)"]),
    ("negative label", npz_bytes(**_with(y_train=np.r_[-1, GOOD["y_train"][1:]])),
     ["negative label -1"]),
    ("labels vs class_names", npz_bytes(**_with(class_names=np.array(["cat", "dog"]))),
     ["labels go up to 2", "class_names names 2 classes"]),
    ("numeric class_names", npz_bytes(**_with(class_names=np.arange(3))),
     ["class_names has dtype int64", "1-D array of strings"]),
    ("NaN", npz_bytes(**_with(x_train=NAN)), ["x_train holds 1 NaN or infinite values"]),
    ("inf", npz_bytes(**_with(x_test=INF)), ["x_test holds 1 NaN or infinite values"]),
    ("empty", npz_bytes(**_with(x_test=np.zeros((0, 4, 4), np.float32),
                                y_test=np.zeros(0, np.int64))), ["x_test is empty"]),
    ("one class", npz_bytes(**_with(y_train=np.zeros(30, np.int64), y_test=np.zeros(12, np.int64))),
     ["has 1 class", "at least 2"]),
    ("too many dimensions", npz_bytes(**_with(x_train=np.zeros((30, 4, 4, 1, 1)),
                                              x_test=np.zeros((12, 4, 4, 1, 1)))),
     ["x_train has shape (30, 4, 4, 1, 1)", "(examples, height, width, channels)"]),
    ("one value per example", npz_bytes(**_with(x_train=np.zeros(30), x_test=np.zeros(12))),
     ["x_train has shape (30,)"]),
]


def test_each_bad_file_gets_its_own_422(client, user_headers) -> None:
    ann, messages = user_headers("ann"), set()
    for case, data, words in BAD_FILES:  # one app for all: each case is one request
        resp = upload(client, ann, "bad", data)
        assert resp.status_code == 422, (case, resp.text)
        [problem] = resp.json()["detail"]
        assert problem["field"] == "file", case
        for word in words:
            assert word in problem["message"], (case, problem["message"])
        messages.add(problem["message"])
    assert len(messages) == len(BAD_FILES)  # no two cases share a message
    assert client.get("/v1/datasets", headers=user_headers("bob")).json()["items"] == []


def test_a_bad_name_is_a_422_naming_the_field(client, user_headers) -> None:
    ann = user_headers("ann")
    for name in ["-lead", "has space", "a/b", "x" * 65, "ünï", "a\x00b", "user:x"]:
        resp = upload(client, ann, name, npz_bytes(**GOOD))
        assert resp.status_code == 422, (name, resp.text)
        assert resp.json()["detail"] == [{"field": "name", "message": (
            f"{name!r} is not a dataset name; use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit")}]  # fmt: skip
    resp = upload(client, ann, "", npz_bytes(**GOOD))
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["field"] == "name"
    assert resp.json()["detail"][0]["message"].startswith("missing")


def test_a_missing_file_and_a_long_description_are_422s(client, user_headers) -> None:
    ann = user_headers("ann")
    resp = client.post("/v1/datasets", headers=ann, data={"name": "x"},
                       files={"other": ("a.txt", b"hi")})  # fmt: skip
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["field"] == "file"
    resp = upload(client, ann, "x", npz_bytes(**GOOD), description="d" * 2001)
    assert resp.status_code == 422
    assert resp.json()["detail"] == [{"field": "description",
                                      "message": "is 2001 characters long; at most 2000"}]


def test_a_taken_name_is_a_409(client, user_headers) -> None:
    assert upload(client, user_headers("ann"), "same", npz_bytes(**GOOD)).status_code == 201
    resp = upload(client, user_headers("bob"), "same", npz_bytes(**GOOD))
    assert resp.status_code == 409
    assert "a dataset named 'same' exists already" in resp.json()["detail"]


def test_a_file_over_the_limit_is_a_413_however_it_is_caught(make_client, user_headers) -> None:
    client = make_client(max_dataset_mb=0.05)  # 52,428 bytes; the body may hold 64 KiB more
    ann = user_headers("ann")
    noise = np.random.default_rng(0).random((200, 8, 8)).astype(np.float32)  # ~51 KB, incompressible
    arrays = {**blobs(shape=(8, 8), train=200, test=10), "x_train": noise}
    data = npz_bytes(compressed=False, **arrays)
    assert 52_428 < len(data) < 52_428 + 60_000  # passes the body cap, not the file's
    resp = upload(client, ann, "big", data)
    assert resp.status_code == 413, resp.text
    assert resp.json()["detail"] == ("the dataset file is larger than this server's limit of "
                                     "0.05 MiB (EWC_MAX_DATASET_MB)")  # fmt: skip
    huge = npz_bytes(compressed=False, **{**arrays, "x_train": np.concatenate([noise] * 3)})
    resp = upload(client, ann, "huge", huge)  # beyond the body cap: refused by its length
    assert resp.status_code == 413
    assert "EWC_MAX_DATASET_MB" in resp.json()["detail"]
    def chunks():  # no length: counted as it streams
        yield b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\r\n"
        for _ in range(20):
            yield b"x" * 10_000
    resp = client.post("/v1/datasets", content=chunks(),
                       headers={**ann, "content-type": "multipart/form-data; boundary=b"})
    assert resp.status_code == 413
    assert "EWC_MAX_DATASET_MB" in resp.json()["detail"]
    small = npz_bytes(**blobs(shape=(4, 4), train=30, test=10))
    assert upload(client, ann, "small", small).status_code == 201
    # the other routes keep the 64 KiB request limit
    resp = client.post("/v1/experiments", headers={**ann, "content-type": "application/json"},
                       content=b"{" + b" " * 70_000 + b"}")  # fmt: skip
    assert resp.status_code == 413
    assert "EWC_MAX_BODY_BYTES" in resp.json()["detail"]


def test_a_compressed_file_too_large_unpacked_is_a_422(make_client, user_headers) -> None:
    client = make_client(max_dataset_mb=0.05)  # unpacked at most 4 × 52,428 bytes
    zeros = {**blobs(shape=(8, 8), train=10, test=10), "x_train": np.zeros((1000, 8, 8))}
    zeros["y_train"] = np.arange(1000) % 4
    data = npz_bytes(**zeros)
    assert len(data) < 52_428
    resp = upload(client, user_headers("ann"), "bomb", data)
    assert resp.status_code == 422
    assert "bytes uncompressed, above this server's limit of 209712" in resp.json()["detail"][0]["message"]


def test_an_upload_that_is_not_a_form_is_a_415(client, user_headers) -> None:
    resp = client.post("/v1/datasets", headers=user_headers("ann"), content=npz_bytes(**GOOD))
    assert resp.status_code == 415
    assert "multipart/form-data" in resp.json()["detail"]


def test_an_upload_needs_a_token(client) -> None:
    resp = upload(client, {}, "x", npz_bytes(**GOOD))
    assert resp.status_code == 401
