"""Adds the input-drift reference (`backend.ml.drift`) to the committed default models' metadata, from the real data
they were trained on, scored by the models themselves. The model files are not touched: a model's version is the
hash of its model files only, and is checked unchanged after the metadata is written.

    python -m backend.ml.drift_defaults [--models model] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from backend.ml.artifacts import METADATA_FILE, write_json_atomic
from backend.ml.congestion.features import WINDOW
from backend.ml.congestion.loaders import read_speeds
from backend.ml.congestion.model import CongestionModel
from backend.ml.drift import reference_for_congestion, reference_for_eclo
from backend.ml.eclo.dacon import api_rows, read_text_csv
from backend.ml.eclo.model import EcloModel
from backend.ml.errors import InvalidRow

ROOT = Path(__file__).resolve().parents[2]
REFERENCE_KEY = "drift_reference"
ECLO_FILE = "daegu/accidents_2007_2015.csv.gz"
ECLO_YEARS = (2013, 2015)  # the last training years: the city the model predicts for now
ECLO_SAMPLE = 20_000
CONGESTION_FILE = "metr-la/metr_la_first_week_speeds.csv.gz"
CONGESTION_SAMPLE = 5_000
# METR-LA's first week (2012-03-01 to 03-07) is before Los Angeles moved to daylight time on 03-11.
LOS_ANGELES_OFFSET = "-08:00"
SEED = 42
MAX_REFERENCE_BYTES = 30_000


def _scored(bodies: list[dict[str, Any]], outcomes: list[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The bodies the model answered and their answers: only answered requests are recorded."""
    kept = [(b, o.to_dict()) for b, o in zip(bodies, outcomes, strict=True) if not isinstance(o, InvalidRow)]
    return [b for b, _ in kept], [o for _, o in kept]


def eclo_reference(model_dir: Path, data_dir: Path, seed: int = SEED) -> dict[str, Any]:
    frame = read_text_csv(data_dir / ECLO_FILE)
    years = frame["사고일시"].astype(str).str.strip().str[:4]
    recent = frame[years.isin([str(y) for y in range(ECLO_YEARS[0], ECLO_YEARS[1] + 1)])]
    bodies = [row for row in api_rows(recent) if row is not None]
    rng = np.random.default_rng(seed)
    if len(bodies) > ECLO_SAMPLE:
        bodies = [bodies[i] for i in np.sort(rng.choice(len(bodies), ECLO_SAMPLE, replace=False))]
    model = EcloModel.load(model_dir)
    bodies, outputs = _scored(bodies, model.predict_many(bodies))
    reference = reference_for_eclo(bodies, outputs)
    reference["source"] = (
        f"{Path(ECLO_FILE).name}: {len(bodies):,} accidents of {ECLO_YEARS[0]}-{ECLO_YEARS[1]} (seed {seed}), "
        f"predicted by model {model.version}"
    )
    return reference


def _readings(speeds: np.ndarray, stamps: list[str]) -> list[dict[str, Any]]:
    return [
        {"timestamp": stamp, "speed_mph": round(float(speed), 4)}
        for stamp, speed in zip(stamps, speeds, strict=True)
        if speed > 0
    ]


def congestion_reference(model_dir: Path, data_dir: Path, seed: int = SEED) -> dict[str, Any]:
    """Request bodies of random windows of the real week: a sensor's 12 readings up to a moment and its
    neighbours' (as the server sends the model), each answered by the model."""
    speeds = read_speeds(data_dir / CONGESTION_FILE)
    model = CongestionModel.load(model_dir)
    sensors = [s for s in model.sensor_ids if s in speeds.columns]
    column = {s: i for i, s in enumerate(speeds.columns)}
    values = speeds.to_numpy()
    stamps = [moment.strftime("%Y-%m-%dT%H:%M:%S") + LOS_ANGELES_OFFSET for moment in speeds.index]
    rng = np.random.default_rng(seed)
    bodies: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    picks = rng.integers(0, len(sensors), CONGESTION_SAMPLE), rng.integers(WINDOW - 1, len(values), CONGESTION_SAMPLE)
    for s, end in zip(*picks, strict=True):
        sensor = sensors[s]
        start = end - WINDOW + 1

        def window(of: str, start: int = start, end: int = end) -> list[dict[str, Any]]:
            return _readings(values[start : end + 1, column[of]], stamps[start : end + 1])

        neighbours = {m: window(m) for m in model.neighbours.get(sensor, []) if m in column}
        recent = window(sensor)
        bodies.append({"sensor_id": sensor, "recent": recent, "neighbour_readings": neighbours})
        rows.append({"sensor_id": sensor, "readings": recent, "neighbour_readings": neighbours})
    outcomes = model.predict_many(rows)
    answered = [b for b, o in zip(bodies, outcomes, strict=True) if not isinstance(o, InvalidRow)]
    _, outputs = _scored(rows, outcomes)
    reference = reference_for_congestion(answered, outputs)
    reference["source"] = (
        f"{Path(CONGESTION_FILE).name}: {len(answered):,} random 12-reading windows of {len(sensors)} sensors "
        f"(seed {seed}), predicted by model {model.version}"
    )
    return reference


def add_reference(model_dir: Path, reference: dict[str, Any], load: Any) -> None:
    """Writes `reference` into the folder's metadata, every other key kept in its order, and checks that the model
    still loads at the version it had."""
    path = model_dir / METADATA_FILE
    metadata = json.loads(path.read_text(encoding="utf-8"))
    size = len(json.dumps(reference, ensure_ascii=False, indent=1).encode())
    if size > MAX_REFERENCE_BYTES:
        raise ValueError(f"{model_dir}: the drift reference takes {size:,} bytes, over {MAX_REFERENCE_BYTES:,}")
    version = load(model_dir).version
    metadata[REFERENCE_KEY] = reference  # replaced in place when present, else added last
    write_json_atomic(path, metadata)
    reloaded = load(model_dir).version
    if reloaded != version or reloaded != metadata["version"]:
        raise RuntimeError(f"{model_dir}: the model's version changed from {version} to {reloaded}")
    print(f"{path}: {REFERENCE_KEY} of {reference['rows']:,} rows, {size:,} bytes; version {reloaded} unchanged")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=Path, default=ROOT / "model", help="folder of the default models")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="the real data sets")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    eclo_dir, congestion_dir = args.models / "eclo", args.models / "congestion"
    add_reference(eclo_dir, eclo_reference(eclo_dir, args.data, args.seed), EcloModel.load)
    add_reference(congestion_dir, congestion_reference(congestion_dir, args.data, args.seed), CongestionModel.load)


if __name__ == "__main__":
    main()
