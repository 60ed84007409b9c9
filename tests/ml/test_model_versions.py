"""Trained versions through the file storage, the local folder and the object store alike: published whole with
their metadata last, listed and read from the storage, served from a local folder (the storage's own, or a copy
downloaded once), and a version trained on one host served by another."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import lightgbm as lgb
import pytest

from backend.core.config import Settings
from backend.core.storage import FileStorage, LocalStorage, S3Storage, storage_from_settings
from backend.ml.artifacts import METADATA_FILE, file_version, read_metadata
from backend.ml.eclo.model import SEVERE_MODEL_FILE
from backend.ml.errors import VersionNotFound
from backend.ml.kinds import MODEL_KINDS
from backend.ml.registry import ModelRegistry, get_registry
from backend.ml.versions import ModelVersions
from backend.wiring import model_versions
from tests.fixtures.models import EchoModel, write_echo_model
from tests.fixtures.object_store import ObjectStore

ECHO_LOADERS = {"echo": EchoModel.load}


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> FileStorage:
    if request.param == "local":
        return LocalStorage(tmp_path / "data")
    store: ObjectStore = request.getfixturevalue("object_store")
    return S3Storage(store.client(), store.new_bucket(), "files", cache_dir=tmp_path / "storage-cache")


@pytest.fixture
def defaults(tmp_path: Path) -> Path:
    write_echo_model(tmp_path / "defaults" / "echo")
    return tmp_path / "defaults"


def host(defaults: Path, storage: FileStorage, folder: Path) -> ModelVersions:
    """One host's view of the versions: its own training and cache folders."""
    return ModelVersions(defaults, storage, work_dir=folder / "work", cache_dir=folder / "cache")


def echo_version(versions: ModelVersions, job_id: str, version: str, **metadata: Any) -> Path:
    partial = versions.partial_folder("echo", job_id)
    (partial / "weights").mkdir()
    (partial / "weights" / "table.bin").write_bytes(version.encode() * 3)
    (partial / METADATA_FILE).write_text(json.dumps({"kind": "echo", "version": version, **metadata}))
    return partial


def test_a_published_version_is_listed_and_served_from_a_local_folder(
    storage: FileStorage, defaults: Path, tmp_path: Path
) -> None:
    versions = host(defaults, storage, tmp_path / "host")
    partial = echo_version(versions, "job-1", "abcdef01", trained_at="2026-01-01T00:00:00+00:00")
    assert versions.list("echo")[-1].version == "echo-1"  # not a version before `publish`
    assert versions.publish("echo", partial) == "abcdef01"
    assert not partial.exists()
    assert storage.list_keys("models/echo") == ["models/echo/abcdef01/metadata.json",
                                                "models/echo/abcdef01/weights/table.bin"]  # fmt: skip
    default, trained = versions.list("echo")
    assert (default.version, default.is_default) == ("echo-1", True)
    assert (trained.version, trained.is_default, trained.trained_at) == ("abcdef01", False, "2026-01-01T00:00:00+00:00")
    folder = versions.local_folder(versions.get("echo", "abcdef01"))
    assert (folder / "weights" / "table.bin").read_bytes() == b"abcdef01" * 3
    assert read_metadata(folder)["version"] == "abcdef01"
    if isinstance(storage, LocalStorage):  # read in place: nothing copied
        assert folder == storage.local_folder("models/echo/abcdef01")
        assert not versions.cache_dir.exists()
    else:
        assert folder.is_relative_to(versions.cache_dir)
        assert versions.local_folder(versions.get("echo", "abcdef01")) == folder  # downloaded once
    registry = ModelRegistry(defaults, ECHO_LOADERS, versions=versions)
    model = registry.get("echo", "abcdef01")
    assert model.version == "abcdef01" and model.name == "echo"
    assert model.predict_one({"x": 2}).to_dict() == {"doubled": 4, "model_version": "abcdef01"}


def test_files_without_their_metadata_are_no_version(storage: FileStorage, defaults: Path, tmp_path: Path) -> None:
    versions = host(defaults, storage, tmp_path / "host")
    storage.put_if_absent("models/echo/abcdef02/weights/table.bin", b"half published")
    storage.put_if_absent("models/echo/not-a-version/metadata.json", b"{}")
    assert [v.version for v in versions.list("echo")] == ["echo-1"]
    with pytest.raises(VersionNotFound):
        versions.get("echo", "abcdef02")
    with pytest.raises(VersionNotFound):
        versions.get("echo", "../../x")


def test_a_failed_upload_publishes_nothing(
    storage: FileStorage, defaults: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    versions = host(defaults, storage, tmp_path / "host")
    partial = echo_version(versions, "job-1", "abcdef03")

    def unreachable(key: str, data: bytes) -> bool:
        raise OSError("the store went away")

    monkeypatch.setattr(storage, "put_if_absent", unreachable)
    with pytest.raises(OSError, match="went away"):
        versions.publish("echo", partial)
    assert [v.version for v in versions.list("echo")] == ["echo-1"]


def test_the_first_publisher_of_a_version_wins(storage: FileStorage, defaults: Path, tmp_path: Path) -> None:
    first, second = host(defaults, storage, tmp_path / "one"), host(defaults, storage, tmp_path / "two")
    earlier = echo_version(first, "job-1", "abcdef04", trained_at="2026-01-01T00:00:00+00:00")
    later = echo_version(second, "job-2", "abcdef04", trained_at="2026-02-01T00:00:00+00:00")
    assert first.publish("echo", earlier) == second.publish("echo", later) == "abcdef04"
    assert not later.exists()
    assert second.get("echo", "abcdef04").trained_at == "2026-01-01T00:00:00+00:00"
    assert [v.version for v in second.list("echo")] == ["echo-1", "abcdef04"]


def test_the_default_version_is_not_published_again(storage: FileStorage, defaults: Path, tmp_path: Path) -> None:
    versions = host(defaults, storage, tmp_path / "host")
    partial = versions.partial_folder("echo", "job-1")
    shutil.copy(defaults / "echo" / METADATA_FILE, partial / METADATA_FILE)
    assert versions.publish("echo", partial) == "echo-1"
    assert storage.list_keys("models/echo") == [] and not partial.exists()
    assert [v.version for v in versions.list("echo")] == ["echo-1"]


def test_a_version_is_named_by_its_hash(storage: FileStorage, defaults: Path, tmp_path: Path) -> None:
    versions = host(defaults, storage, tmp_path / "host")
    with pytest.raises(ValueError, match="hex hash"):
        versions.publish("echo", echo_version(versions, "job-1", "../../elsewhere"))
    assert storage.list_keys("") == []


def test_delete_removes_the_version_and_a_host_reloads_one_published_again(
    storage: FileStorage, defaults: Path, tmp_path: Path
) -> None:
    serving, training = host(defaults, storage, tmp_path / "api"), host(defaults, storage, tmp_path / "trainer")
    training.publish("echo", echo_version(training, "job-1", "abcdef05", trained_at="2026-01-01T00:00:00+00:00"))
    folder = serving.local_folder(serving.get("echo", "abcdef05"))
    with pytest.raises(ValueError, match="default"):
        training.delete("echo", "echo-1")
    training.delete("echo", "abcdef05")
    assert storage.list_keys("models/echo") == []
    assert [v.version for v in serving.list("echo")] == ["echo-1"]
    with pytest.raises(VersionNotFound):
        serving.get("echo", "abcdef05")
    # The same bytes trained again, with other metadata: the serving host's earlier copy is not reused.
    training.publish("echo", echo_version(training, "job-2", "abcdef05", trained_at="2026-03-01T00:00:00+00:00"))
    again = serving.local_folder(serving.get("echo", "abcdef05"))
    assert read_metadata(again)["trained_at"] == "2026-03-01T00:00:00+00:00"
    assert again == folder


def test_only_stale_partial_folders_are_cleaned(defaults: Path, tmp_path: Path) -> None:
    versions = host(defaults, LocalStorage(tmp_path / "data"), tmp_path / "host")
    dead, alive = versions.partial_folder("echo", "dead"), versions.partial_folder("echo", "alive")
    long_ago = time.time() - 3600
    os.utime(dead, (long_ago, long_ago))
    assert versions.clean_partials("echo", older_than_seconds=600) == 1
    assert not dead.exists() and alive.exists()
    assert versions.clean_partials("never-trained", older_than_seconds=0) == 0


def test_registries_of_two_storages_are_two(defaults: Path, tmp_path: Path) -> None:
    one = host(defaults, LocalStorage(tmp_path / "one"), tmp_path / "host")
    other = host(defaults, LocalStorage(tmp_path / "other"), tmp_path / "host")
    first = get_registry(defaults, ECHO_LOADERS, versions=one)
    assert get_registry(defaults, ECHO_LOADERS, versions=one) is first
    assert get_registry(defaults, ECHO_LOADERS, versions=other) is not first


def eclo_version(default: Path, partial: Path) -> str:
    """Another version of an ECLO model: the same model less its last tree (other bytes, another hash)."""
    booster = lgb.Booster(model_file=str(default / "model.txt"))
    trees = booster.num_trees() - 1
    booster.save_model(str(partial / "model.txt"), num_iteration=trees)
    shutil.copy(default / SEVERE_MODEL_FILE, partial / SEVERE_MODEL_FILE)
    metadata = read_metadata(default)
    metadata.update(version=file_version(partial / "model.txt", partial / SEVERE_MODEL_FILE), num_trees=trees,
                    trained_at="2026-01-01T00:00:00+00:00")  # fmt: skip
    (partial / METADATA_FILE).write_text(json.dumps(metadata))
    return str(metadata["version"])


def test_a_version_trained_on_one_host_is_listed_and_served_by_another(
    object_store: ObjectStore, small_model_root: Path, tmp_path: Path, classic_row: dict
) -> None:
    shared = {name.lower(): value for name, value in object_store.env(prefix="stack").items()}
    trainer = Settings(data_dir=tmp_path / "trainer-data", model_dir=small_model_root, **shared)
    api = Settings(data_dir=tmp_path / "api-data", model_dir=small_model_root, **shared)

    trained = model_versions(trainer, storage_from_settings(trainer))
    partial = trained.partial_folder("eclo", "job-1")
    version = eclo_version(small_model_root / "eclo", partial)
    assert trained.publish("eclo", partial) == version

    served = model_versions(api, storage_from_settings(api))
    registry = ModelRegistry(api.model_dir, MODEL_KINDS, versions=served)
    try:
        assert [v.version for v in served.list("eclo")][1:] == [version]
        model = registry.get("eclo", version)
        assert model.version == version and model.name == "eclo"
        assert model.predict_one(classic_row).to_dict()["model_version"] == version
        assert registry.apply_aliases({"eclo": {"champion": version}}) == [f"eclo: champion {version}"]
        assert registry.get("eclo").version == version
        # Nothing under either DATA_DIR: the version in the bucket, the training and the copy in temporary folders.
        assert not trainer.data_dir.exists() and not api.data_dir.exists()
        assert served.local_folder(served.get("eclo", version)).is_relative_to(served.cache_dir)
    finally:
        shutil.rmtree(served.cache_dir, ignore_errors=True)
        shutil.rmtree(trained.work_dir, ignore_errors=True)


def test_a_download_keeps_to_the_versions_folder(object_store: ObjectStore, defaults: Path, tmp_path: Path) -> None:
    """Keys in the bucket are literal: one written there as `../../x` by someone else must not leave the copy."""
    client, bucket = object_store.client(), object_store.new_bucket()
    versions = host(defaults, S3Storage(client, bucket, "files"), tmp_path / "host")
    versions.publish("echo", echo_version(versions, "job-1", "abcdef01"))
    for stray in ("../../escaped.txt", "weights/../../../escaped.txt", "folder-marker/"):
        client.put_object(Bucket=bucket, Key=f"files/models/echo/abcdef01/{stray}", Body=b"not a model file")
    folder = versions.local_folder(versions.get("echo", "abcdef01"))
    assert (folder / "weights" / "table.bin").read_bytes() == b"abcdef01" * 3
    assert not list(tmp_path.rglob("escaped.txt")) and not (folder / "folder-marker").exists()
