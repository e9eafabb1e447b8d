"""The dashboard's Datasets page: the uploads listed (shape, classes, size, owner,
checksum), the upload form (multipart, its form token and origin checked before the file
is read; a bad file shown with the API's message), delete only for the owner or an admin
and refused while a job uses the dataset; a login first."""

from __future__ import annotations

import hashlib

import numpy as np

from store import users
from store.db import unit_of_work
from tests.fixtures.dashboard import csrf_of
from tests.fixtures.npz import blobs, npz_bytes

DATA = npz_bytes(**blobs(shape=(8, 8), classes=4, train=40, test=12))


def post_upload(ui, name: str, data: bytes = DATA, **extra):
    fields = {"name": name, "description": "", "csrf_token": csrf_of(ui, "/ui/datasets"), **extra}
    return ui.post("/ui/datasets", data=fields, files={"file": ("d.npz", data)},
                   follow_redirects=False)  # fmt: skip


def test_upload_list_and_delete_on_the_page(ui, session_factory) -> None:
    page = ui.get("/ui/datasets")
    assert page.status_code == 200 and "No datasets yet." in page.text
    assert 'href="/ui/datasets" class="on"' in page.text
    assert 'enctype="multipart/form-data"' in page.text

    r = post_upload(ui, "blobs", description="four blobs")
    assert r.status_code == 303 and r.headers["location"] == "/ui/datasets?uploaded=blobs"
    page = ui.get(r.headers["location"]).text
    assert "Uploaded <code>user:blobs</code>" in page
    assert "8×8" in page and "four blobs" in page and hashlib.sha256(DATA).hexdigest()[:12] in page

    bad = npz_bytes(x_train=np.zeros((3, 2)), y_train=np.zeros(3, np.int64))
    r = post_upload(ui, "bad", bad)
    assert r.status_code == 422 and "missing array &#39;x_test&#39;" in r.text
    assert post_upload(ui, "blobs").status_code == 409
    assert post_upload(ui, "has space").status_code == 422

    # the form token and the origin, as every dashboard form
    r = ui.post("/ui/datasets", data={"name": "x", "csrf_token": "forged"},
                files={"file": ("d.npz", DATA)})  # fmt: skip
    assert r.status_code == 403
    r = ui.post("/ui/datasets", data={"name": "x", "csrf_token": csrf_of(ui, "/ui/datasets")},
                files={"file": ("d.npz", DATA)}, headers={"Origin": "https://evil.example"})  # fmt: skip
    assert r.status_code == 403
    assert ui.post("/ui/datasets", data={"name": "x"}).status_code == 415

    # in use: refused; then deleted by its owner (the admin here)
    with unit_of_work(session_factory) as s:
        _, token = users.create_token(s, users.create_user(s, "bob"))
    job = ui.post("/v1/experiments", headers={"Authorization": f"Bearer {token}"},
                  json={"dataset": "user:blobs", "dataset_update": "switch", "splits": 2,
                        "epochs": 2})  # fmt: skip
    assert job.status_code == 201, job.text
    delete = {"csrf_token": csrf_of(ui, "/ui/datasets")}
    r = ui.post("/ui/datasets/blobs/delete", data=delete, follow_redirects=False)
    assert r.status_code == 409 and "used by queued or running experiments" in r.text
    ui.post(f"/v1/experiments/{job.json()['id']}/cancel", headers={"Authorization": f"Bearer {token}"})
    r = ui.post("/ui/datasets/blobs/delete", data=delete, follow_redirects=False)
    assert r.status_code == 303
    assert "No datasets yet." in ui.get("/ui/datasets").text

    del ui.cookies["ewc_session"]
    r = ui.get("/ui/datasets", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/ui/login")
