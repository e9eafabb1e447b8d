"""Artifacts on disk: listing, path safety (no request path leaves the folder), retention."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import pytest

from store import artifacts as A
from store.db import unit_of_work
from store.models import JobStatus


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """An artifacts folder: experiment 1 with a model, two checkpoints, tensorboard files,
    a secret next to it, and symlinks that point outside."""
    root = tmp_path / "artifacts"
    exp = A.experiment_dir(root, 1)
    (exp / "task-1").mkdir(parents=True)
    (exp / "task-2").mkdir()
    (exp / "tensorboard").mkdir()
    (exp / "model.keras").write_bytes(b"M" * 100)
    (exp / "task-1" / "ckpt.weights.h5").write_bytes(b"a" * 10)
    (exp / "task-1" / "state.json").write_text("{}")
    (exp / "task-2" / "ckpt.weights.h5").write_bytes(b"b" * 20)
    (exp / "tensorboard" / "events.out").write_bytes(b"e")
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    (exp / "leak.txt").symlink_to(secret)
    (exp / "task-2" / "leak").symlink_to(secret)
    (exp / "outside").symlink_to(tmp_path, target_is_directory=True)
    A.experiment_dir(root, 2).mkdir(parents=True)
    (A.experiment_dir(root, 2) / "model.keras").write_bytes(b"other")
    return root


def test_listing_orders_model_checkpoints_tensorboard(tree):
    items = A.list_artifacts(tree, 1)
    assert [(a.path, a.kind) for a in items] == [
        ("model.keras", "model"),
        ("task-1.zip", "checkpoint"),
        ("task-2.zip", "checkpoint"),
        ("tensorboard.zip", "tensorboard"),
    ]
    assert items[0].size == 100
    assert items[1].size == 12 and items[1].files == 2
    assert items[2].files == 1, "the symlink leaving the folder is not counted"
    assert A.list_artifacts(tree, 99) == []


def test_resolve_files_and_folders(tree):
    path, is_folder = A.resolve_artifact(tree, 1, "model.keras")
    assert path.read_bytes() == b"M" * 100 and not is_folder
    path, is_folder = A.resolve_artifact(tree, 1, "task-1/state.json")
    assert path.name == "state.json" and not is_folder
    path, is_folder = A.resolve_artifact(tree, 1, "task-2.zip")
    assert is_folder and path.name == "task-2"


@pytest.mark.parametrize(
    "bad",
    [
        "../2/model.keras",
        "task-1/../../2/model.keras",
        "..",
        "/etc/passwd",
        "//etc/passwd",
        "~/x",
        "task-1\\..\\..\\2\\model.keras",
        "model.keras\x00.png",
        "./model.keras",
        "",
    ],
)
def test_traversal_is_refused(tree, bad):
    with pytest.raises(A.ArtifactPathRefused):
        A.resolve_artifact(tree, 1, bad)


@pytest.mark.parametrize("link", ["leak.txt", "task-2/leak", "outside/secret.txt", "outside.zip"])
def test_symlinks_pointing_outside_are_refused(tree, link):
    with pytest.raises(A.ArtifactPathRefused, match="outside"):
        A.resolve_artifact(tree, 1, link)


@pytest.mark.parametrize("missing", ["nope.keras", "task-9.zip", "task-1/nope"])
def test_missing_is_not_found(tree, missing):
    with pytest.raises(A.ArtifactNotFound):
        A.resolve_artifact(tree, 1, missing)


def test_a_folder_without_zip_points_at_the_zip(tree):
    with pytest.raises(A.ArtifactNotFound, match="task-1.zip"):
        A.resolve_artifact(tree, 1, "task-1")


def test_zip_holds_the_folder_without_outside_links(tree):
    folder, _ = A.resolve_artifact(tree, 1, "task-2.zip")
    data = b"".join(A.iter_chunks(A.zip_folder(folder, A.experiment_dir(tree, 1).resolve())))
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.namelist() == ["ckpt.weights.h5"]
        assert zf.read("ckpt.weights.h5") == b"b" * 20


def test_prune_deletes_old_checkpoints_only(tree, session_factory, make_user, make_experiment):
    owner = make_user("ada")
    old = make_experiment(owner, status=JobStatus.succeeded, finished_days_ago=40)
    recent = make_experiment(owner, status=JobStatus.failed, finished_days_ago=5)
    running = make_experiment(owner, status=JobStatus.running)
    for exp_id in (old, recent, running):
        folder = A.experiment_dir(tree, exp_id)
        (folder / "task-1").mkdir(parents=True, exist_ok=True)
        (folder / "task-1" / "w.h5").write_bytes(b"x" * 7)
        (folder / "model.keras").write_bytes(b"m")
    outside = tree.parent / "keep-me"
    outside.mkdir()
    (outside / "precious").write_text("p")
    os.symlink(outside, A.experiment_dir(tree, old) / "task-9")

    with unit_of_work(session_factory) as s:
        dry = A.prune_checkpoints(s, tree, 30, dry_run=True)
        assert old == 1, "experiment 1 is the fixture's tree, with task-1 and task-2"
        assert {(p.experiment_id, p.path.name) for p in dry} == {
            (old, "task-1"), (old, "task-2"), (old, "task-9")
        }
        assert (A.experiment_dir(tree, old) / "task-1").exists()
        pruned = A.prune_checkpoints(s, tree, 30)
    assert sum(p.bytes_freed for p in pruned) == (10 + 2 + 7) + 20  # task-1, task-2
    assert not (A.experiment_dir(tree, old) / "task-1").exists()
    assert not (A.experiment_dir(tree, old) / "task-9").exists()
    assert (outside / "precious").read_text() == "p", "a symlink is removed, never its target"
    assert (A.experiment_dir(tree, old) / "model.keras").exists(), "final model kept"
    assert (A.experiment_dir(tree, recent) / "task-1").exists()
    assert (A.experiment_dir(tree, running) / "task-1").exists()
    with unit_of_work(session_factory) as s:
        assert A.prune_checkpoints(s, tree, 0) == []
        assert A.prune_checkpoints(s, tree, 1) == [
            A.PrunedCheckpoint(recent, A.experiment_dir(tree, recent) / "task-1", 7)
        ]
