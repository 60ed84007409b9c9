"""Both file storages, the local folder and the S3-compatible object store (moto's server on loopback), pass the
same tests: whole files or none, first writer wins, no key outside its folder."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pydantic import ValidationError

from backend.core.config import Settings
from backend.core.storage import SPOOL_BYTES, FileStorage, LocalStorage, S3Storage, storage_from_settings
from tests.fixtures.object_store import ObjectStore

PREFIX = "stacks/one"


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> FileStorage:
    if request.param == "local":
        return LocalStorage(tmp_path / "root")
    store: ObjectStore = request.getfixturevalue("object_store")
    return S3Storage(store.client(), store.new_bucket(), PREFIX, cache_dir=tmp_path / "cache")


def read(storage: FileStorage, key: str) -> bytes:
    with storage.open_read(key) as handle:
        return handle.read()


def test_a_failed_write_leaves_nothing(storage: FileStorage) -> None:
    with pytest.raises(RuntimeError), storage.open_write("a/b.txt") as out:
        out.write(b"half")
        raise RuntimeError("client went away")
    assert not storage.exists("a/b.txt")
    with pytest.raises(FileNotFoundError):
        storage.open_read("a/b.txt")


def test_a_failed_local_write_leaves_no_partial_file(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    with pytest.raises(RuntimeError), storage.open_write("a/b.txt") as out:
        out.write(b"half")
        raise RuntimeError("client went away")
    assert [p.name for p in (tmp_path / "a").iterdir()] == []


@pytest.mark.parametrize("size", [0, 10, SPOOL_BYTES + 12_345], ids=["empty", "small", "past-the-spool"])
def test_a_written_file_reads_back_whole(storage: FileStorage, size: int) -> None:
    data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    with storage.open_write("d/source.csv") as out:
        out.write(data[: size // 2])
        out.write(data[size // 2 :])
    assert storage.exists("d/source.csv")
    assert read(storage, "d/source.csv") == data


def test_reads_seek_and_iterate_lines(storage: FileStorage) -> None:
    lines = [f"line {i}\n".encode() for i in range(20_000)]
    with storage.open_write("d/rows.jsonl") as out:
        out.write(b"".join(lines))
    start = sum(len(line) for line in lines[:15_000])
    with storage.open_read("d/rows.jsonl") as handle:
        handle.seek(start)
        assert handle.read(len(lines[15_000]) * 2) == lines[15_000] + lines[15_001]
        handle.seek(0)
        assert handle.read(7) == b"line 0\n"
    with storage.open_read("d/rows.jsonl") as handle:
        assert list(handle) == lines


def test_the_first_writer_wins(storage: FileStorage) -> None:
    assert storage.put_if_absent("x/chunk-1", b"first")
    assert not storage.put_if_absent("x/chunk-1", b"second")
    assert read(storage, "x/chunk-1") == b"first"
    storage.delete_prefix("x")
    assert not storage.exists("x/chunk-1")


def test_one_of_racing_writers_wins(storage: FileStorage) -> None:
    writers = 8
    for key in (f"race/chunk-{i}" for i in range(10)):
        start = threading.Barrier(writers)

        def write(n: int, key: str = key, start: threading.Barrier = start) -> bool:
            start.wait()
            return storage.put_if_absent(key, f"writer {n}".encode())

        with ThreadPoolExecutor(writers) as pool:
            won = list(pool.map(write, range(writers)))
        winners = [n for n, w in enumerate(won) if w]
        if isinstance(storage, LocalStorage):
            assert len(winners) == 1, won
        else:  # moto checks If-None-Match, then stores, without a lock between: S3 itself answers one 200
            assert len(winners) >= 1, won
        assert read(storage, key) in {f"writer {n}".encode() for n in winners}


def test_delete_prefix_removes_a_folder_of_many_files_and_nothing_beside_it(storage: FileStorage) -> None:
    keys = [f"datasets/a/jobs/j/chunk-{i:06d}.jsonl" for i in range(1_005)]  # past one DeleteObjects' 1,000
    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(lambda key: storage.put_if_absent(key, b"1\n"), keys))
    storage.put_if_absent("datasets/a/source.csv", b"a")
    storage.put_if_absent("datasets/ab/source.csv", b"ab")
    storage.put_if_absent("datasets/a.csv", b"beside")
    assert storage.list_keys("datasets/a/jobs") == keys  # past one listing page of 1,000

    storage.delete_prefix("datasets/a")

    assert not any(storage.exists(key) for key in [keys[0], keys[999], keys[-1], "datasets/a/source.csv"])
    assert read(storage, "datasets/ab/source.csv") == b"ab"
    assert read(storage, "datasets/a.csv") == b"beside"
    storage.delete_prefix("datasets/a.csv")
    assert not storage.exists("datasets/a.csv")
    storage.delete_prefix("datasets/never-there")


def test_local_path_holds_the_current_bytes(storage: FileStorage) -> None:
    assert not storage.local_path("t/table.parquet").exists()
    with storage.open_write("t/table.parquet") as out:
        out.write(b"version 1")
    assert storage.local_path("t/table.parquet").read_bytes() == b"version 1"
    with storage.open_write("t/table.parquet") as out:
        out.write(b"version 2")
    path = storage.local_path("t/table.parquet")
    assert path.read_bytes() == b"version 2"
    assert path.suffix == ".parquet"


def test_list_keys_lists_a_folder_at_any_depth_and_nothing_beside_it(storage: FileStorage) -> None:
    inside = ["m/a/1/metadata.json", "m/a/1/sub/model.txt", "m/a/2/x"]
    for key in [*inside, "m/ab/y", "m/a.txt", "top"]:
        storage.put_if_absent(key, b"x")
    assert storage.list_keys("m/a") == inside
    assert storage.list_keys("m/a/") == inside
    assert storage.list_keys("m/a/1/metadata.json") == []  # a file, not a folder
    assert storage.list_keys("m/never") == []
    assert storage.list_keys("") == sorted([*inside, "m/ab/y", "m/a.txt", "top"])
    with pytest.raises(ValueError, match="outside the storage folder"):
        storage.list_keys("../m")


def test_a_local_listing_leaves_out_files_being_written(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    storage.put_if_absent("v/done.txt", b"x")
    with storage.open_write("v/half.txt") as out:
        out.write(b"half")
        assert storage.list_keys("v") == ["v/done.txt"]
    assert storage.list_keys("v") == ["v/done.txt", "v/half.txt"]


def test_only_a_local_storage_has_local_folders(storage: FileStorage) -> None:
    storage.put_if_absent("m/a/1/model.txt", b"x")
    folder = storage.local_folder("m/a/1")
    if isinstance(storage, LocalStorage):
        assert folder is not None and (folder / "model.txt").read_bytes() == b"x"
        assert storage.url().startswith("file:///")
    else:
        assert folder is None
        assert storage.url() == f"s3://{storage.bucket}/{PREFIX}/"  # type: ignore[attr-defined]


def test_keys_cannot_leave_the_folder(storage: FileStorage) -> None:
    for key in ("../secret", "a/../../secret", "/etc/passwd"):
        with pytest.raises(ValueError, match="outside the storage folder"):
            storage.open_read(key)
        with pytest.raises(ValueError, match="outside the storage folder"):
            storage.put_if_absent(key, b"x")


def test_the_s3_store_keeps_its_keys_under_its_prefix(object_store: ObjectStore, tmp_path: Path) -> None:
    bucket = object_store.new_bucket()
    storage = S3Storage(object_store.client(), bucket, f"/{PREFIX}/", cache_dir=tmp_path)
    storage.put_if_absent("a/../b/c.txt", b"c")
    listed = object_store.client().list_objects_v2(Bucket=bucket)["Contents"]
    assert [item["Key"] for item in listed] == [f"{PREFIX}/b/c.txt"]


def test_settings_choose_the_storage(object_store: ObjectStore, tmp_path: Path) -> None:
    assert isinstance(storage_from_settings(Settings(data_dir=tmp_path)), LocalStorage)
    env = object_store.env(prefix="deep/er/")
    settings = Settings(data_dir=tmp_path, **{name.lower(): value for name, value in env.items()})
    storage = storage_from_settings(settings)
    assert isinstance(storage, S3Storage)
    assert (storage.bucket, storage.prefix) == (env["STORAGE_URL"].split("/")[2], "deep/er/")
    assert storage.put_if_absent("k", b"v") and read(storage, "k") == b"v"
    assert not list(tmp_path.iterdir())  # nothing in DATA_DIR


@pytest.mark.parametrize(
    "url", ["bucket", "s3://", "s3://Upper-Case", "s3://ab", "gs://bucket/x", "s3://bucket/../x", "s3://b_b/x"]
)
def test_settings_refuse_a_bad_storage_url(url: str) -> None:
    with pytest.raises(ValidationError, match="STORAGE_URL must be empty"):
        Settings(storage_url=url)
