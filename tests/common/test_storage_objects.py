"""The artifact store's object operations, the same on a local folder and on S3 (moto)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from common.settings import Settings
from common.storage import LocalStore, NotInStore, S3Store, open_store, parse_s3_url


def test_put_get_info_list_delete(store, tmp_path: Path) -> None:
    src = tmp_path / "model.keras"
    src.write_bytes(b"\x00model" * 1000)
    info = store.put_file("experiments/1/model.keras", src)
    assert info.size == 6000 and info.sha256 == hashlib.sha256(src.read_bytes()).hexdigest()
    store.put_bytes("experiments/1/tensorboard/events.out", b"event")
    store.put_bytes("experiments/2/model.keras", b"two")

    assert store.exists("experiments/1/model.keras")
    assert not store.exists("experiments/1/nothing")
    assert store.info("experiments/1/model.keras").size == 6000
    assert store.get_bytes("experiments/1/tensorboard/events.out") == b"event"
    with store.open("experiments/1/model.keras") as f:
        assert f.read(6) == b"\x00model"
    out = store.get_file("experiments/1/model.keras", tmp_path / "down" / "m.keras")
    assert out.read_bytes() == src.read_bytes()
    assert [p.name for p in (tmp_path / "down").iterdir()] == ["m.keras"]  # no temp file left

    assert [o.key for o in store.list("experiments/1")] == [
        "experiments/1/model.keras", "experiments/1/tensorboard/events.out"]
    assert [o.key for o in store.list("experiments/1/")] == [o.key for o in store.list("experiments/1")]
    assert len(store.list()) == 3
    assert store.list("experiments/9") == []

    store.put_bytes("experiments/2/model.keras", b"replaced")  # a whole replacement
    assert store.get_bytes("experiments/2/model.keras") == b"replaced"
    store.delete("experiments/2/model.keras")
    store.delete("experiments/2/model.keras")  # twice is fine
    assert not store.exists("experiments/2/model.keras")
    assert store.delete_prefix("experiments/1") == 2
    assert store.list() == []


def test_missing_key_is_not_in_store(store, tmp_path: Path) -> None:
    with pytest.raises(NotInStore, match="experiments/5/model.keras"):
        store.info("experiments/5/model.keras")
    with pytest.raises(NotInStore):
        store.get_file("experiments/5/model.keras", tmp_path / "x")
    with pytest.raises(NotInStore), store.open("experiments/5/model.keras"):
        pass
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("key", ["", "../etc/passwd", "a/../b", "/abs", "a//b", "a\\b", "a/./b"])
def test_keys_cannot_leave_the_store(store, key: str) -> None:
    with pytest.raises(ValueError, match="not a valid artifact key"):
        store.put_bytes(key, b"x")


def test_store_answers_check(store) -> None:
    store.check()


def test_url_for_names_the_place(local_store, s3_store, bucket: str) -> None:
    assert s3_store.url_for("experiments/1/model.keras") == \
        f"s3://{bucket}/team/artifacts/experiments/1/model.keras"
    assert repr(s3_store) == f"S3Store('s3://{bucket}/team/artifacts')"
    assert local_store.url_for("a/b").endswith("artifacts/a/b")


def test_open_store_and_settings_choose_the_backend(tmp_path: Path) -> None:
    assert isinstance(open_store(tmp_path), LocalStore)
    assert isinstance(open_store(f"file://{tmp_path}"), LocalStore)
    s3 = open_store("s3://bucket/some/prefix/")
    assert isinstance(s3, S3Store) and (s3.bucket, s3.prefix) == ("bucket", "some/prefix")
    assert parse_s3_url("s3://bucket") == ("bucket", "")
    with pytest.raises(ValueError, match="s3://bucket/prefix or a local folder"):
        open_store("gs://bucket/x")
    with pytest.raises(ValueError, match="no query"):
        open_store("s3://bucket/x?region=eu")

    default = Settings(data_dir=tmp_path, _env_file=None)
    assert default.resolved_artifacts_url() == str(tmp_path / "artifacts")  # today's folder
    assert isinstance(default.artifact_store(), LocalStore)
    assert default.artifact_store().root == default.resolved_artifacts_dir()
    chosen = Settings(data_dir=tmp_path, artifacts_url="s3://b/p", _env_file=None)
    assert isinstance(chosen.artifact_store(), S3Store)
    blank = Settings(data_dir=tmp_path, artifacts_url="  ", _env_file=None)
    assert blank.artifacts_url is None


def test_the_local_store_keeps_todays_layout(local_store, tmp_path: Path) -> None:
    local_store.put_bytes("experiments/3/model.keras", b"m")
    assert (tmp_path / "artifacts" / "experiments" / "3" / "model.keras").read_bytes() == b"m"
    assert local_store.local_path("experiments/3/model.keras").is_file()
