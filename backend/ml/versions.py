"""Every version of every model name: the committed default folder under the model folder is each name's first
version; trained versions live in the file storage (a DATA_DIR folder or an object store shared by every host)
under `models/<name>/<version>/`. A version is LightGBM's text files plus `metadata.json` (never pickle); its name
is the version, the hash of its model files, so a version's files never change once published.

A training writes its version into a local `.partial-<job>` folder (`work_dir`); `publish` uploads the files and
`metadata.json` last: a version exists once its metadata does, so a training that dies leaves no version behind,
only a partial folder of the host it ran on (`discard`, `clean_partials`). A host serves a version from a local
folder: the storage's own when it is a local folder, else a copy downloaded once into `cache_dir`.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backend.ml.artifacts import METADATA_FILE, read_metadata
from backend.ml.errors import VersionNotFound

if TYPE_CHECKING:
    from backend.core.storage import FileStorage

PARTIAL_PREFIX = ".partial-"
VERSIONS_PREFIX = "models"  # the versions' keys in the storage: models/<name>/<version>/<file>
# Where a host keeps the versions it downloaded to serve them (immutable, so kept by name and version), and where
# its trainings write theirs by default: never under DATA_DIR.
VERSION_CACHE_DIR = Path(tempfile.gettempdir()) / "traffic-model-cache"
TRAINING_WORK_DIR = Path(tempfile.gettempdir()) / "traffic-model-training"
COPY_BUFFER_BYTES = 8 * 1024 * 1024
_VERSION = re.compile(r"^[0-9a-f]{8,64}$")
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class VersionFolder:
    name: str
    version: str
    metadata: dict[str, Any]
    is_default: bool
    folder: Path | None = None  # the committed default's folder; a trained version's files are in the storage

    @property
    def trained_at(self) -> str:
        return str(self.metadata.get("trained_at") or "")


class ModelVersions:
    def __init__(
        self,
        defaults_dir: Path,
        storage: FileStorage,
        work_dir: Path | None = None,
        cache_dir: Path = VERSION_CACHE_DIR,
    ) -> None:
        self.defaults_dir = Path(defaults_dir)
        self.storage = storage
        # One folder per storage: two stores may hold one version with other metadata (trained apart).
        per_storage = hashlib.sha256(storage.url().encode()).hexdigest()[:16]
        self.work_dir = Path(work_dir) if work_dir is not None else TRAINING_WORK_DIR / per_storage
        self.cache_dir = Path(cache_dir) / per_storage
        self._downloading = threading.Lock()

    @property
    def location(self) -> str:
        """Where the trained versions are (tells the registries of two storages apart)."""
        return f"{self.storage.url().rstrip('/')}/{VERSIONS_PREFIX}"

    @staticmethod
    def _key(name: str, version: str = "") -> str:
        return f"{VERSIONS_PREFIX}/{name}/{version}".rstrip("/")

    def _default(self, name: str) -> VersionFolder | None:
        folder = self.defaults_dir / name
        if not _NAME.match(name) or not (folder / METADATA_FILE).is_file():
            return None
        metadata = read_metadata(folder)
        return VersionFolder(name, str(metadata.get("version", "")), metadata, True, folder)

    def _stored_metadata(self, name: str, version: str) -> dict[str, Any] | None:
        try:
            with self.storage.open_read(f"{self._key(name, version)}/{METADATA_FILE}") as handle:
                return dict(json.loads(handle.read().decode("utf-8")))
        except FileNotFoundError:  # deleted since it was listed
            return None

    def list(self, name: str) -> list[VersionFolder]:
        """The name's versions, oldest first (the default first)."""
        found: dict[str, VersionFolder] = {}
        default = self._default(name)
        if default is not None:
            found[default.version] = default
        if _NAME.match(name):
            root = self._key(name)
            for key in self.storage.list_keys(root):
                version, _, file = key[len(root) + 1 :].partition("/")
                if file == METADATA_FILE and _VERSION.match(version) and version not in found:
                    metadata = self._stored_metadata(name, version)
                    if metadata is not None:
                        found[version] = VersionFolder(name, version, metadata, False)
        trained = sorted((v for v in found.values() if not v.is_default), key=lambda v: (v.trained_at, v.version))
        return ([default] if default is not None else []) + trained

    def get(self, name: str, version: str) -> VersionFolder:
        default = self._default(name)
        if default is not None and default.version == version:
            return default
        metadata = self._stored_metadata(name, version) if _NAME.match(name) and _VERSION.match(version) else None
        if metadata is None:
            raise VersionNotFound(name, version)
        return VersionFolder(name, version, metadata, False)

    def local_folder(self, found: VersionFolder) -> Path:
        """A local folder holding the version's files, for the loaders: the default's own, the storage's own
        when it is a local folder, else this host's downloaded copy (made once: written aside, then renamed)."""
        if found.folder is not None:
            return found.folder
        key = self._key(found.name, found.version)
        in_place = self.storage.local_folder(key)
        if in_place is not None:
            return in_place
        target = self.cache_dir / found.name / found.version
        with self._downloading:  # one download of a version at a time in this process (other processes: the rename)
            if not _is_copy_of(target, found):
                self._download(key, found, target)
        return target

    def _download(self, key: str, found: VersionFolder, target: Path) -> None:
        keys = self.storage.list_keys(key)
        if f"{key}/{METADATA_FILE}" not in keys:
            raise VersionNotFound(found.name, found.version)
        partial = target.with_name(f".{found.version}.{uuid.uuid4().hex}.part")
        try:
            for file in keys:
                relative = file[len(key) + 1 :]
                if not relative or relative.endswith("/") or ".." in relative.split("/"):
                    continue  # a folder marker, or a name that would leave the copy's folder: not a model file
                path = partial / relative
                path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                with self.storage.open_read(file) as source, path.open("wb") as out:
                    shutil.copyfileobj(source, out, COPY_BUFFER_BYTES)
            if target.exists() and not _is_copy_of(target, found):
                shutil.rmtree(target, ignore_errors=True)  # the copy of a version deleted and published again since
            try:
                partial.rename(target)
            except OSError:  # another process of this host renamed its copy first
                if not _is_copy_of(target, found):
                    raise
        finally:
            shutil.rmtree(partial, ignore_errors=True)

    def partial_path(self, name: str, job_id: str) -> Path:
        return self.work_dir / name / f"{PARTIAL_PREFIX}{job_id}"

    def partial_folder(self, name: str, job_id: str) -> Path:
        """An empty local folder for a version being trained (not a version until `publish`)."""
        folder = self.partial_path(name, job_id)
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        return folder

    def publish(self, name: str, partial: Path) -> str:
        """Upload a whole partial folder under its version (the metadata's), `metadata.json` last and only if
        absent: an identical version already there wins (the same model files, by the version's hash). The
        partial folder is removed."""
        version = str(read_metadata(partial)["version"])
        default = self._default(name)
        if default is not None and default.version == version:
            self.discard(partial)
            return version
        if not (_NAME.match(name) and _VERSION.match(version)):
            raise ValueError(f"a trained version is a hex hash of a model name, not {name!r} {version!r}")
        key = self._key(name, version)
        if not self.storage.exists(f"{key}/{METADATA_FILE}"):
            for path in sorted(p for p in partial.rglob("*") if p.is_file()):
                relative = path.relative_to(partial).as_posix()
                if relative != METADATA_FILE and not relative.endswith(".tmp"):
                    with path.open("rb") as source, self.storage.open_write(f"{key}/{relative}") as out:
                        shutil.copyfileobj(source, out, COPY_BUFFER_BYTES)
            self.storage.put_if_absent(f"{key}/{METADATA_FILE}", (partial / METADATA_FILE).read_bytes())
        self.discard(partial)
        return version

    def discard(self, partial: Path) -> None:
        shutil.rmtree(partial, ignore_errors=True)

    def delete(self, name: str, version: str) -> None:
        found = self.get(name, version)
        if found.is_default:
            raise ValueError("the committed default version cannot be deleted")
        key = self._key(name, version)
        self.storage.delete_prefix(f"{key}/{METADATA_FILE}")  # first: no longer a version while its files go
        self.storage.delete_prefix(key)
        shutil.rmtree(self.cache_dir / name / version, ignore_errors=True)

    def clean_partials(self, name: str, older_than_seconds: float) -> int:
        """Remove this host's partial folders untouched for `older_than_seconds` (past the training time limit:
        their training died with its process); how many."""
        root = self.work_dir / name
        removed = 0
        if root.is_dir():
            for folder in root.glob(f"{PARTIAL_PREFIX}*"):
                try:
                    stale = time.time() - folder.stat().st_mtime > older_than_seconds
                except FileNotFoundError:
                    continue
                if stale:
                    shutil.rmtree(folder, ignore_errors=True)
                    removed += 1
        return removed


def _is_copy_of(folder: Path, found: VersionFolder) -> bool:
    """Whether `folder` is a copy of the stored version (copies are renamed into place whole; the metadata tells a
    copy of a version deleted and published again since)."""
    try:
        return read_metadata(folder) == found.metadata
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return False
