"""Artifacts over HTTP: listing, downloads, zips, and no way out of the folder."""

from __future__ import annotations

import io
import zipfile

import httpx
import pytest

from store import artifacts as A


@pytest.fixture
def exp_with_artifacts(api, admin_id, make_experiment, app_settings, tmp_path):
    exp = make_experiment(admin_id)
    root = app_settings.resolved_artifacts_dir()
    folder = A.experiment_dir(root, exp)
    (folder / "task-1").mkdir(parents=True)
    (folder / "model.keras").write_bytes(b"KERAS" * 10)
    (folder / "task-1" / "checkpoint.weights.h5").write_bytes(b"W" * 64)
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    (folder / "leak.txt").symlink_to(secret)
    other = A.experiment_dir(root, exp + 1000)
    other.mkdir(parents=True)
    (other / "model.keras").write_text("TOP-SECRET other experiment")
    return exp


def raw_get(api, path: str) -> httpx.Response:
    """GET with the path sent byte for byte (no client-side dot-segment normalisation)."""
    url = httpx.URL("http://testserver", raw_path=path.encode())
    return api.get(url)


def test_list_and_download(api, exp_with_artifacts):
    exp = exp_with_artifacts
    r = api.get(f"/v1/experiments/{exp}/artifacts")
    assert r.status_code == 200
    items = r.json()["items"]
    assert [(i["path"], i["kind"], i["size"]) for i in items] == [
        ("model.keras", "model", 50), ("task-1.zip", "checkpoint", 64)]
    assert items[1]["url"] == f"/v1/experiments/{exp}/artifacts/task-1.zip"
    r = api.get(f"/v1/experiments/{exp}/artifacts/model.keras")
    assert r.status_code == 200 and r.content == b"KERAS" * 10
    r = api.get(f"/v1/experiments/{exp}/artifacts/task-1.zip")
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        assert zf.read("checkpoint.weights.h5") == b"W" * 64
    r = api.get(f"/v1/experiments/{exp}/artifacts/task-1/checkpoint.weights.h5")
    assert r.content == b"W" * 64


@pytest.mark.parametrize(
    "suffix",
    [
        "../{other}/model.keras",
        "..%2F{other}%2Fmodel.keras",
        "%2e%2e/{other}/model.keras",
        "%2E%2E%2F{other}%2Fmodel.keras",
        "task-1/..%2F..%2F{other}%2Fmodel.keras",
        "%2Fetc%2Fpasswd",
        "/etc/passwd",
        "..%5C{other}%5Cmodel.keras",
        "leak.txt",
        "%252e%252e%252f{other}%252fmodel.keras",
        "model.keras%00",
    ],
)
def test_no_request_path_leaves_the_folder(api, exp_with_artifacts, suffix):
    exp = exp_with_artifacts
    path = f"/v1/experiments/{exp}/artifacts/" + suffix.format(other=exp + 1000)
    r = raw_get(api, path)
    assert r.status_code in (404, 422), (path, r.status_code)
    assert b"TOP-SECRET" not in r.content
    assert b"root:" not in r.content


def test_unknown_experiment_and_missing_artifact(api, exp_with_artifacts, admin_id, make_experiment):
    assert api.get("/v1/experiments/999/artifacts").status_code == 404
    assert api.get("/v1/experiments/999/artifacts/model.keras").status_code == 404
    empty = make_experiment(admin_id)
    assert api.get(f"/v1/experiments/{empty}/artifacts").json()["items"] == []
    r = api.get(f"/v1/experiments/{exp_with_artifacts}/artifacts/nope.bin")
    assert r.status_code == 404 and "GET /v1/experiments/" in r.json()["detail"]
