"""The new-experiment form offers every uploaded dataset (`user:<name>`, labelled with its
shape and classes) beside the built-ins, and a form posted with one queues an experiment
whose stored spec names the exact file (`user_dataset`: sha256, shape, classes), with the
API's own 422s: an unknown name on `dataset`, a model that cannot take the shape on
`model`. The real app and database, the form posted as a browser would."""

from __future__ import annotations

import hashlib
import html

from store.models import Experiment
from tests.fixtures.dashboard import ADMIN_TOKEN, new_form
from tests.fixtures.npz import blobs, npz_bytes, upload

DATA = npz_bytes(**blobs(shape=(8, 8), classes=4, train=40, test=12))
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def post(ui, **fields: str):
    return ui.post("/ui/new", data=new_form(ui, **fields), follow_redirects=False)


def test_the_form_lists_uploads_and_queues_a_run_on_one(ui, session_factory) -> None:
    page = ui.get("/ui/new").text
    assert '<optgroup label="Built-in">' in page and 'value="digits"' in page
    assert "Uploaded" not in page  # no uploads yet: no empty group

    assert upload(ui, ADMIN, "blobs", DATA).status_code == 201
    page = ui.get("/ui/new").text
    assert '<optgroup label="Uploaded">' in page
    assert '<option value="user:blobs" >user:blobs (8×8×1, 4 classes, 40 train)</option>' in page
    assert 'value="mnist-5k" selected' in page  # the form's start is unchanged

    r = post(ui, dataset="user:blobs", dataset_update="switch", splits="2", epochs="2")
    assert r.status_code == 303, r.text
    exp_id = int(r.headers["location"].split("=")[1])
    with session_factory() as s:
        spec = s.get(Experiment, exp_id).spec
    assert spec["dataset"] == "user:blobs"
    assert spec["user_dataset"] == {"checksum": hashlib.sha256(DATA).hexdigest(),
                                    "input_shape": [8, 8, 1], "num_classes": 4}  # fmt: skip


def test_the_form_refuses_what_the_api_refuses(ui, session_factory) -> None:
    assert upload(ui, ADMIN, "blobs", DATA).status_code == 201

    r = post(ui, dataset="user:nope", dataset_update="switch", splits="2", epochs="2")
    assert r.status_code == 422
    text = html.unescape(r.text)
    assert 'id="err-dataset"' in r.text and "no uploaded dataset named 'nope'" in text

    r = post(ui, dataset="user:blobs", model="lenet", dataset_update="switch", splits="2")
    assert r.status_code == 422 and 'id="err-model"' in r.text
    assert "28" in html.unescape(r.text.split('id="err-model"')[1].split("</p>")[0])
    assert 'value="user:blobs" selected' in r.text  # the refused choice is shown again

    r = post(ui, dataset="user:blobs", dataset_update="switch", splits="5")  # 4 classes
    assert r.status_code == 422 and 'id="err-splits"' in r.text
    with session_factory() as s:
        assert s.query(Experiment).count() == 0  # nothing queued by a refused form
