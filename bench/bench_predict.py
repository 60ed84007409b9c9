"""In-process ECLO prediction speed: single-row latency (p50/p99 µs) and batch throughput (rows/s).

Usage: python bench/bench_predict.py [--model-dir model] [--rounds 5000]
Rows are varied: drawn from the synthetic Dacon set, so every call encodes a different row.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np

from backend.ml.dacon import api_rows
from backend.ml.datagen import generate_dacon_frame
from backend.ml.predictor import EcloModel


def _percentiles(samples: list[float]) -> str:
    us = np.asarray(samples) * 1e6
    return f"p50 {np.percentile(us, 50):7.1f} µs   p99 {np.percentile(us, 99):7.1f} µs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=Path("model"))
    parser.add_argument("--rounds", type=int, default=5000)
    args = parser.parse_args()

    model = EcloModel.load(args.model_dir / "eclo")
    candidates = [r for r in api_rows(generate_dacon_frame(12_000, seed=2024).astype(str)) if r is not None]
    outcomes = model.predict_many(candidates)  # keep the rows this model's vocabulary accepts
    rows = [row for row, outcome in zip(candidates, outcomes, strict=True) if not isinstance(outcome, Exception)]
    print(
        f"model eclo {model.version}, {model.metadata['num_trees']} trees; {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}"
    )

    for explain in (False, True):
        for row in rows[:200]:
            model.predict_one(row, explain=explain)
        samples = []
        for i in range(args.rounds):
            row = rows[i % len(rows)]
            started = time.perf_counter()
            model.predict_one(row, explain=explain)
            samples.append(time.perf_counter() - started)
        label = "with explanation" if explain else "prediction only "
        print(f"predict_one {label}: {_percentiles(samples)}")

    for size in (100, 10_000):
        batch = rows[:size]
        timings = []
        for _ in range(5 if size == 100 else 3):
            started = time.perf_counter()
            model.predict_many(batch)
            timings.append(time.perf_counter() - started)
        best = min(timings)
        print(f"predict_many {size:>6} rows: {size / best:10.0f} rows/s ({best * 1e3:.1f} ms)")


if __name__ == "__main__":
    main()
