"""Model artifacts on disk: LightGBM's own text model file plus `metadata.json` (never pickle)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import lightgbm as lgb

MODEL_FILE = "model.txt"
METADATA_FILE = "metadata.json"


def file_version(*paths: Path) -> str:
    """The version of a model is the hash of its files: the same bytes, the same version."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    os.replace(tmp, path)


def read_metadata(model_dir: Path) -> dict[str, Any]:
    return json.loads((model_dir / METADATA_FILE).read_text(encoding="utf-8"))


def model_dirs(root: Path) -> list[Path]:
    """Every folder under `root` that holds a model (its metadata file names its kind; the kind's loader checks
    the rest)."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if (p / METADATA_FILE).is_file())


def load_boosters(folder: Path, metadata: dict[str, Any], *files: str) -> list[lgb.Booster]:
    """The folder's LightGBM text models, refused when their bytes are not the version the metadata names."""
    paths = [folder / name for name in files]
    if file_version(*paths) != metadata["version"]:
        names = " and ".join(str(p) for p in paths)
        raise ValueError(f"{names} do not match the version in its metadata; retrain or restore the model")
    return [lgb.Booster(model_file=str(p)) for p in paths]


def load_booster(folder: Path, metadata: dict[str, Any]) -> lgb.Booster:
    """The folder's one LightGBM text model (see `load_boosters`)."""
    return load_boosters(folder, metadata, metadata.get("model_file", MODEL_FILE))[0]
