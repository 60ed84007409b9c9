"""Where uploaded files and their results live: one small interface, a local-folder implementation.

Keys are relative paths (`datasets/<id>/source.csv`). An object store would implement the same four verbs; the
API and the workers only see `FileStorage`, so they may run on different machines once the folder is shared (a
compose volume) or the store is remote.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Protocol


class FileStorage(Protocol):
    def open_read(self, key: str) -> BinaryIO: ...

    @contextmanager
    def open_write(self, key: str) -> Iterator[BinaryIO]:
        """A file that appears under `key` whole, or not at all (written aside, then renamed)."""
        ...

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Write `data` under `key` unless something is already there; returns whether this call wrote it."""
        ...

    def exists(self, key: str) -> bool: ...

    def delete_prefix(self, prefix: str) -> None: ...

    def local_path(self, key: str) -> Path:
        """Where `key` can be read as a local file (an embedded engine reads files by path)."""
        ...


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise ValueError(f"storage key outside the storage folder: {key!r}")
        return path

    def open_read(self, key: str) -> BinaryIO:
        return self._path(key).open("rb")

    @contextmanager
    def open_write(self, key: str) -> Iterator[BinaryIO]:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
        try:
            with partial.open("wb") as handle:
                yield handle
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
        partial.write_bytes(data)
        try:
            os.link(partial, path)  # atomic, and fails when the key exists: the first writer wins
            return True
        except FileExistsError:
            return False
        finally:
            partial.unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def delete_prefix(self, prefix: str) -> None:
        path = self._path(prefix)
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)

    def local_path(self, key: str) -> Path:
        return self._path(key)
