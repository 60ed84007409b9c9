"""The local file storage: whole files or none, first writer wins, no key outside its folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.core.storage import LocalStorage


def test_a_failed_write_leaves_nothing(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    with pytest.raises(RuntimeError), storage.open_write("a/b.txt") as out:
        out.write(b"half")
        raise RuntimeError("client went away")
    assert not storage.exists("a/b.txt")
    assert [p.name for p in (tmp_path / "a").iterdir()] == []


def test_the_first_writer_wins(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    assert storage.put_if_absent("x/chunk-1", b"first")
    assert not storage.put_if_absent("x/chunk-1", b"second")
    with storage.open_read("x/chunk-1") as handle:
        assert handle.read() == b"first"
    storage.delete_prefix("x")
    assert not storage.exists("x/chunk-1")


def test_keys_cannot_leave_the_folder(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "root")
    with pytest.raises(ValueError, match="outside the storage folder"):
        storage.open_read("../secret")
