"""Where uploaded files and their results live: one small interface, a local folder or an S3-compatible object store.

Keys are relative paths (`datasets/<id>/source.csv`). The API and the workers only see `FileStorage`, built by
`storage_from_settings` (STORAGE_URL), so they may run on different machines once the folder is shared (a compose
volume) or the store is remote.
"""

from __future__ import annotations

import io
import os
import posixpath
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Protocol, cast

from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as StoreConnectionError

from backend.core.config import Settings


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

    def list_keys(self, prefix: str) -> list[str]:
        """Every key under the folder `prefix` (at any depth), sorted, relative to the storage's root."""
        ...

    def local_folder(self, prefix: str) -> Path | None:
        """The local folder whose files are the keys under `prefix`, when the storage is a local folder; None when
        they are elsewhere (to be read with `open_read`)."""
        ...

    def url(self) -> str:
        """Where the files are (`file:///...`, `s3://bucket/prefix`): two storages with one URL hold the same files."""
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

    def list_keys(self, prefix: str) -> list[str]:
        folder = self._path(prefix)
        if not folder.is_dir():
            return []
        root = self.root.resolve()
        return sorted(
            path.relative_to(root).as_posix()
            for path in folder.rglob("*")
            if path.is_file() and not (path.name.startswith(".") and path.name.endswith(".part"))  # being written
        )

    def local_folder(self, prefix: str) -> Path | None:
        return self._path(prefix)

    def url(self) -> str:
        return self.root.resolve().as_uri()


# An upload is kept in memory up to this size, then in a temporary file, until it goes to the store whole.
SPOOL_BYTES = 8 * 1024 * 1024
# A read of an object fetches this much at a time (one ranged GET), unless asked for more at once.
READ_BUFFER_BYTES = 1024 * 1024
# Objects read by path (`local_path`) are downloaded here, one file per key and ETag; never under DATA_DIR.
S3_CACHE_DIR = Path(tempfile.gettempdir()) / "traffic-storage-cache"
CONFLICT_RETRIES = 5
# The store could not be reached (a cut link, a timeout): the work is worth another delivery, not a failed job.
STORE_UNREACHABLE: tuple[type[Exception], ...] = (StoreConnectionError, HTTPClientError)


def _is_missing(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound")


def _status(exc: ClientError) -> int | None:
    return exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")


class S3Storage:
    """Files as objects under `prefix` in an S3-compatible bucket, with the local folder's guarantees: an object
    appears whole or not at all (a PUT, or a multipart upload's completion, is atomic), and `put_if_absent` is a
    conditional PUT (`If-None-Match: *`), so the first writer wins."""

    def __init__(self, client: Any, bucket: str, prefix: str = "", cache_dir: Path = S3_CACHE_DIR) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self.cache_dir = Path(cache_dir) / bucket

    def _key(self, key: str) -> str:
        clean = posixpath.normpath(key)
        if key.startswith("/") or clean == ".." or clean.startswith("../"):
            raise ValueError(f"storage key outside the storage folder: {key!r}")
        return self.prefix + ("" if clean == "." else clean)

    def _head(self, name: str) -> dict[str, Any] | None:
        try:
            return cast(dict[str, Any], self.client.head_object(Bucket=self.bucket, Key=name))
        except ClientError as exc:
            if _is_missing(exc):
                return None
            raise

    def open_read(self, key: str) -> BinaryIO:
        name = self._key(key)
        head = self._head(name)
        if head is None:
            raise FileNotFoundError(f"no object {name!r} in bucket {self.bucket!r}")
        raw = _RangedObject(self.client, self.bucket, name, int(head["ContentLength"]))
        return cast(BinaryIO, io.BufferedReader(raw, buffer_size=READ_BUFFER_BYTES))

    @contextmanager
    def open_write(self, key: str) -> Iterator[BinaryIO]:
        """Spooled aside, uploaded when the block ends without an exception: nothing is sent otherwise."""
        name = self._key(key)
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
            yield cast(BinaryIO, spool)
            spool.seek(0)
            self.client.upload_fileobj(spool, self.bucket, name)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """412: the key exists. 409 (ConditionalRequestConflict): another conditional write to it was under way and
        may yet fail, so this one is tried again until the store says which won."""
        name = self._key(key)
        attempt = 0
        while True:
            try:
                self.client.put_object(Bucket=self.bucket, Key=name, Body=data, IfNoneMatch="*")
                return True
            except ClientError as exc:
                attempt += 1
                if _status(exc) == 412:
                    return False
                if _status(exc) != 409 or attempt >= CONFLICT_RETRIES:
                    raise
                time.sleep(0.05 * attempt)

    def exists(self, key: str) -> bool:
        return self._head(self._key(key)) is not None

    def delete_prefix(self, prefix: str) -> None:
        """The object `prefix` and every object under `prefix/`, as removing a file or a folder would."""
        name = self._key(prefix)
        batch = [{"Key": name}] if name and not name.endswith("/") else []
        folder = name if not name or name.endswith("/") else f"{name}/"
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=folder):
            for item in page.get("Contents", []):
                batch.append({"Key": item["Key"]})
                if len(batch) == 1000:  # the most one DeleteObjects takes
                    self._delete(batch)
                    batch = []
        if batch:
            self._delete(batch)
        shutil.rmtree(self.cache_dir / name, ignore_errors=True)

    def _delete(self, batch: list[dict[str, str]]) -> None:
        answer = self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
        if answer.get("Errors"):
            first = answer["Errors"][0]
            raise OSError(f"could not delete {first.get('Key')!r} from bucket {self.bucket!r}: {first.get('Message')}")

    def local_path(self, key: str) -> Path:
        """A downloaded copy, under S3_CACHE_DIR/<bucket>/<key>/<ETag><suffix>: made once per version of the object
        (written aside, then renamed), older versions dropped. A missing key gives a path that does not exist, as the
        local folder's does."""
        name = self._key(key)
        folder = self.cache_dir / name
        head = self._head(name)
        if head is None:
            return folder / "missing"
        etag = str(head["ETag"]).strip('"')
        path = folder / f"{etag}{posixpath.splitext(name)[1]}"
        if path.exists():
            return path
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)  # uploads of users: for this service's user only
        partial = folder / f".{uuid.uuid4().hex}.part"
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=name, IfMatch=head["ETag"])
            with partial.open("wb") as out:
                shutil.copyfileobj(answer["Body"], out, READ_BUFFER_BYTES)
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
        for older in folder.iterdir():
            if older.is_file() and older != path and not older.name.startswith("."):
                older.unlink(missing_ok=True)  # a reader holding it open keeps reading it
        return path

    def list_keys(self, prefix: str) -> list[str]:
        name = self._key(prefix)
        folder = name if not name or name.endswith("/") else f"{name}/"
        keys: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=folder):
            keys.extend(item["Key"][len(self.prefix) :] for item in page.get("Contents", []))
        return sorted(keys)

    def local_folder(self, prefix: str) -> Path | None:
        return None

    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


class _RangedObject(io.RawIOBase):
    """An object read by ranged GETs from where the reader stands: seekable, as `DatasetFiles.read_rows` needs, and
    never downloaded whole for a few lines of it."""

    def __init__(self, client: Any, bucket: str, name: str, size: int) -> None:
        self._client, self._bucket, self._name, self._size = client, bucket, name, size
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def _get(self, count: int) -> bytes:
        if count <= 0 or self._position >= self._size:
            return b""
        end = min(self._position + count, self._size) - 1
        answer = self._client.get_object(Bucket=self._bucket, Key=self._name, Range=f"bytes={self._position}-{end}")
        data = cast(bytes, answer["Body"].read())
        self._position += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self._get(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def readall(self) -> bytes:
        return self._get(self._size - self._position)


def storage_from_settings(settings: Settings) -> FileStorage:
    """The storage STORAGE_URL names: the DATA_DIR folder when empty, else the bucket and prefix of `s3://`."""
    location = settings.storage_location
    if location is None:
        return LocalStorage(settings.data_dir)
    import boto3
    from botocore.config import Config

    secret = settings.s3_secret_access_key
    client = boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        region_name=settings.s3_region,
        aws_access_key_id=settings.s3_access_key_id,
        aws_secret_access_key=secret.get_secret_value() if secret is not None else None,
        # A stalled read must end as the store's error (another delivery), well before a task's soft time limit.
        config=Config(connect_timeout=5, read_timeout=15, retries={"max_attempts": 3, "mode": "standard"}),
    )
    return S3Storage(client, *location)
