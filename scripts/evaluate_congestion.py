"""Congestion models through the served path (`CongestionModel.predict_one`, one request's row at a time) on the
test windows of a speed table (the DCRNN split training uses), beside copy-last on the same targets.

Usage: python scripts/evaluate_congestion.py MODEL_DIR [MODEL_DIR ...] (--speeds FILE | --generated) [--every N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from backend.ml.congestion.features import HORIZONS  # noqa: E402
from backend.ml.congestion.loaders import read_speeds  # noqa: E402
from backend.ml.congestion.model import CongestionModel  # noqa: E402
from backend.ml.congestion.network import generate_network  # noqa: E402
from backend.ml.congestion.training import chronological_split, masked_metrics  # noqa: E402


def evaluate(model: CongestionModel, speeds: np.ndarray, stamps: list[str], ids: list[str], ends: np.ndarray) -> None:
    predicted: dict[int, list[float]] = {h: [] for h in HORIZONS}
    actual: dict[int, list[float]] = {h: [] for h in HORIZONS}
    last: dict[int, list[float]] = {h: [] for h in HORIZONS}
    started = time.perf_counter()
    for t in ends:
        window = {sensor: [{"timestamp": stamps[k], "speed_mph": float(speeds[k, j])}
                           for k in range(t - 11, t + 1) if speeds[k, j] > 0]
                  for j, sensor in enumerate(ids)}  # fmt: skip
        for j, sensor in enumerate(ids):
            if sensor not in model.index or not window[sensor]:
                continue
            nearby = {m: window[m] for m in model.neighbours.get(sensor, []) if window.get(m)}
            forecast = model.predict_one(
                {"sensor_id": sensor, "readings": window[sensor], "neighbour_readings": nearby}
            )
            for h, speed in zip(HORIZONS, forecast.speeds, strict=True):
                predicted[h].append(speed)
                actual[h].append(speeds[t + h, j])
                last[h].append(window[sensor][-1]["speed_mph"])
    print(f"{model.metadata.get('data_source')} (version {model.version}), {time.perf_counter() - started:.0f} s")
    for h in HORIZONS:
        y = np.array(actual[h], dtype=np.float64)
        y = np.where(y > 0, y, np.nan)
        ours, copy = masked_metrics(np.array(predicted[h]), y), masked_metrics(np.array(last[h]), y)
        print(f"  +{h * 5:>2} min: model MAE {ours['mae']:.2f} RMSE {ours['rmse']:.2f} MAPE {ours['mape']:.1f}% | "
              f"copy-last MAE {copy['mae']:.2f} RMSE {copy['rmse']:.2f} MAPE {copy['mape']:.1f}% | "
              f"{ours['scored']:,} targets")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--speeds", type=Path, help="a wide speed table (the METR-LA layout)")
    source.add_argument("--generated", action="store_true", help="the generator's network (8 weeks, seed 42)")
    parser.add_argument("--every", type=int, default=1, help="score every N-th test window (default: all)")
    args = parser.parse_args()
    frame = generate_network(weeks=8, seed=42).speeds if args.generated else read_speeds(args.speeds)
    speeds = frame.to_numpy(dtype=np.float64)
    stamps = [moment.isoformat() for moment in frame.index]
    ends = chronological_split(len(frame)).test[:: max(1, args.every)]
    print(f"{len(ends)} test windows x {frame.shape[1]} sensors")
    for folder in args.models:
        evaluate(CongestionModel.load(folder), speeds, stamps, [str(c) for c in frame.columns], ends)
    return 0


if __name__ == "__main__":
    sys.exit(main())
