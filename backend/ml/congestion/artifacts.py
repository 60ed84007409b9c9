"""Saving a trained congestion model: LightGBM text, the profiles as a plain .npy array, metadata.json."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from backend.ml.artifacts import METADATA_FILE, MODEL_FILE, file_version, write_json_atomic
from backend.ml.congestion.features import FEATURES, HORIZONS
from backend.ml.congestion.model import LEVELS, PROFILES_FILE
from backend.ml.congestion.training import CongestionTraining


def save_congestion(
    result: CongestionTraining,
    out: Path,
    *,
    frame: pd.DataFrame,
    sensors: pd.DataFrame,
    neighbours: dict[str, list[str]],
    data_source: str,
) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / (MODEL_FILE + ".tmp")
    result.booster.save_model(str(tmp))
    tmp.replace(out / MODEL_FILE)
    np.save(out / PROFILES_FILE, np.round(result.profiles.table, 2).astype(np.float32), allow_pickle=False)
    position = sensors.set_index("sensor_id")
    ids = list(frame.columns)
    metadata = {
        "name": out.name,
        "kind": "congestion",
        "target": "speed (mph) 15/30/60 minutes ahead, as a change from the last reading",
        "horizons_minutes": [h * 5 for h in HORIZONS],
        "features": list(FEATURES),
        **result.metrics,
        "sensors": [
            {
                "sensor_id": s,
                "latitude": float(position.at[s, "latitude"]),
                "longitude": float(position.at[s, "longitude"]),
                "free_flow_mph": round(float(f), 2),
            }
            for s, f in zip(ids, result.free_flow, strict=True)
        ],  # fmt: skip
        "neighbours": {s: [m for m in neighbours.get(s, []) if m in set(ids)] for s in ids},
        "levels": LEVELS,
        "band": result.band,
        "rows": int(frame.size),
        "time_range": [str(frame.index[0]), str(frame.index[-1])],
        "num_trees": result.booster.num_trees(),
        "lightgbm_version": lgb.__version__,
        "version": file_version(out / MODEL_FILE),
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "data_source": data_source,
        "model_file": MODEL_FILE,
        "profiles_file": PROFILES_FILE,
    }
    write_json_atomic(out / METADATA_FILE, metadata)
    return metadata
