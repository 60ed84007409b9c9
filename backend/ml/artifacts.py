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


def file_version(path: Path) -> str:
    """The version of a model is the hash of its file: the same bytes, the same version."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


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


def load_booster(folder: Path, metadata: dict[str, Any]) -> lgb.Booster:
    """The folder's LightGBM text model, refused when its bytes are not the version its metadata names."""
    model_path = folder / metadata.get("model_file", MODEL_FILE)
    if file_version(model_path) != metadata["version"]:
        raise ValueError(f"{model_path} does not match the version in its metadata; retrain or restore it")
    return lgb.Booster(model_file=str(model_path))
