"""Every version of every model name, as folders: the committed default folder under the model folder is each
name's first version; trained versions live under `<versions root>/<name>/<version>/`. A version's folder is
LightGBM's text files plus `metadata.json` (never pickle); its name is the version, the hash of its model files.

A new version is written into a hidden `.partial-<job>` folder and renamed into place when whole, so a training
that dies leaves no version behind, only a partial folder that `clean_partials` removes.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backend.ml.artifacts import METADATA_FILE, read_metadata
from backend.ml.errors import VersionNotFound

PARTIAL_PREFIX = ".partial-"
_VERSION = re.compile(r"^[0-9a-f]{8,64}$")
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class VersionFolder:
    name: str
    version: str
    folder: Path
    metadata: dict[str, Any]
    is_default: bool

    @property
    def trained_at(self) -> str:
        return str(self.metadata.get("trained_at") or "")


class ModelVersions:
    def __init__(self, defaults_dir: Path, versions_dir: Path) -> None:
        self.defaults_dir = Path(defaults_dir)
        self.versions_dir = Path(versions_dir)

    def _default(self, name: str) -> VersionFolder | None:
        folder = self.defaults_dir / name
        if not _NAME.match(name) or not (folder / METADATA_FILE).is_file():
            return None
        metadata = read_metadata(folder)
        return VersionFolder(name, str(metadata.get("version", "")), folder, metadata, True)

    def list(self, name: str) -> list[VersionFolder]:
        """The name's versions, oldest first (the default first)."""
        found: dict[str, VersionFolder] = {}
        default = self._default(name)
        if default is not None:
            found[default.version] = default
        root = self.versions_dir / name
        if _NAME.match(name) and root.is_dir():
            for folder in root.iterdir():
                if _VERSION.match(folder.name) and (folder / METADATA_FILE).is_file() and folder.name not in found:
                    found[folder.name] = VersionFolder(name, folder.name, folder, read_metadata(folder), False)
        trained = sorted((v for v in found.values() if not v.is_default), key=lambda v: (v.trained_at, v.version))
        return ([default] if default is not None else []) + trained

    def get(self, name: str, version: str) -> VersionFolder:
        default = self._default(name)
        if default is not None and default.version == version:
            return default
        folder = self.versions_dir / name / version
        if not (_NAME.match(name) and _VERSION.match(version) and (folder / METADATA_FILE).is_file()):
            raise VersionNotFound(name, version)
        return VersionFolder(name, version, folder, read_metadata(folder), False)

    def partial_path(self, name: str, job_id: str) -> Path:
        return self.versions_dir / name / f"{PARTIAL_PREFIX}{job_id}"

    def partial_folder(self, name: str, job_id: str) -> Path:
        """An empty folder for a version being trained (hidden from `list` until `publish`)."""
        folder = self.partial_path(name, job_id)
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        return folder

    def publish(self, name: str, partial: Path) -> str:
        """Move a whole partial folder into place under its version (the metadata's); an identical version
        already there wins and the partial one is dropped."""
        version = str(read_metadata(partial)["version"])
        target = self.versions_dir / name / version
        default = self._default(name)
        if target.exists() or (default is not None and default.version == version):
            shutil.rmtree(partial, ignore_errors=True)
        else:
            partial.rename(target)
        return version

    def discard(self, partial: Path) -> None:
        shutil.rmtree(partial, ignore_errors=True)

    def delete(self, name: str, version: str) -> None:
        found = self.get(name, version)
        if found.is_default:
            raise ValueError("the committed default version cannot be deleted")
        shutil.rmtree(found.folder)

    def clean_partials(self, name: str, keep: set[str] = frozenset()) -> int:  # type: ignore[assignment]
        """Remove the partial folders of trainings that died (except the jobs in `keep`); how many."""
        root = self.versions_dir / name
        removed = 0
        if root.is_dir():
            for folder in root.glob(f"{PARTIAL_PREFIX}*"):
                if folder.name[len(PARTIAL_PREFIX) :] not in keep:
                    shutil.rmtree(folder, ignore_errors=True)
                    removed += 1
        return removed
