"""In-process ECLO prediction speed: single-row latency (p50/p99 µs) and batch throughput (rows/s).

Usage: python bench/bench_predict.py [--model-dir model] [--rounds 2000] [--rows FILE]
Rows are varied, so every call encodes a different row: the competition's real 2022 input rows when the shared data
is at hand (`--rows`, any file in the Dacon layout), else the synthetic Dacon set.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
from results import run_line, write_section

from backend.ml.eclo.dacon import api_rows, read_text_csv
from backend.ml.eclo.datagen import generate_dacon_frame
from backend.ml.eclo.model import EcloModel

ROUNDS = 5
REAL_ROWS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "daegu" / "dacon_test_2022.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=Path("model"))
    parser.add_argument("--rounds", type=int, default=2000, help="predictions per round (5 rounds)")
    parser.add_argument("--rows", type=Path, default=REAL_ROWS if REAL_ROWS.is_file() else None)
    args = parser.parse_args()

    model = EcloModel.load(args.model_dir / "eclo")
    frame = read_text_csv(args.rows) if args.rows else generate_dacon_frame(12_000, seed=2024).astype(str)
    candidates = [r for r in api_rows(frame) if r is not None]
    outcomes = model.predict_many(candidates)  # keep the rows this model's vocabulary accepts
    rows = [row for row, outcome in zip(candidates, outcomes, strict=True) if not isinstance(outcome, Exception)]
    print(
        f"model eclo {model.version}, {model.metadata['num_trees']} + {model.metadata['num_trees_severe']} trees; "
        f"{len(rows)} distinct rows from {args.rows.name if args.rows else 'the synthetic set'}; {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}"
    )

    figures: dict[str, str] = {}
    for explain in (False, True):
        for row in rows[:200]:
            model.predict_one(row, explain=explain)
        p50s, p99s = [], []
        for round_number in range(ROUNDS):
            samples = []
            for i in range(args.rounds):
                row = rows[(round_number * args.rounds + i) % len(rows)]
                started = time.perf_counter()
                model.predict_one(row, explain=explain)
                samples.append(time.perf_counter() - started)
            us = np.asarray(samples) * 1e6
            p50s.append(np.percentile(us, 50))
            p99s.append(np.percentile(us, 99))
        label = "with explanation" if explain else "prediction only "
        figures[label.strip()] = f"p50 {np.median(p50s):.1f} µs, p99 {np.median(p99s):.1f} µs"
        print(
            f"predict_one {label}: p50 {np.median(p50s):6.1f} µs   p99 {np.median(p99s):6.1f} µs   "
            f"(medians of {ROUNDS} rounds of {args.rounds}; round p50s {min(p50s):.0f}-{max(p50s):.0f})"
        )

    # The explanation alone, the same encoded rows, rounds alternating: the TreeSHAP tables against the baseline,
    # LightGBM's own TreeSHAP on the single-row fast path (what the tables replaced).
    encoded = [model.encode(row).features for row in rows[: args.rounds]]
    ways = {
        "TreeSHAP tables": model.explain_encoded,
        "LightGBM TreeSHAP (baseline)": lambda f: model._single.contributions(f) @ model._group_matrix,
    }
    medians: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(ROUNDS):
        for name, explain in ways.items():
            samples = []
            for features in encoded:
                started = time.perf_counter()
                explain(features)
                samples.append(time.perf_counter() - started)
            medians[name].append(float(np.median(samples)) * 1e6)
    for name, values in medians.items():
        print(f"explanation, {name}: p50 {np.median(values):6.1f} µs (rounds {min(values):.1f}-{max(values):.1f})")
        figures[name] = f"p50 {np.median(values):.1f} µs"

    for size in (100, 10_000):
        batch = rows[:size]
        timings = []
        for _ in range(5):
            started = time.perf_counter()
            model.predict_many(batch)
            timings.append(time.perf_counter() - started)
        median = float(np.median(timings))
        print(f"predict_many {size:>6} rows: {size / median:10.0f} rows/s (median of 5 rounds, {median * 1e3:.1f} ms)")
        figures[f"predict_many {size}"] = f"{size / median:,.0f} rows/s"

    source = f"the {len(rows):,} distinct rows of {args.rows.name}" if args.rows else "the synthetic Dacon set"
    write_section(
        "bench_predict",
        f"""ECLO predictions in process, `make bench` (`bench/bench_predict.py`). Rows: {source} the model accepts,
each encoded from scratch; no cache on this path. Single predictions: medians of {ROUNDS} rounds of {args.rounds:,}.
The explanation alone: the same encoded rows, TreeSHAP tables and the baseline (LightGBM's own TreeSHAP on the
single-row fast path) in alternating rounds. `predict_many`: median of 5 calls. Model: eclo {model.version},
{model.metadata["num_trees"]} + {model.metadata["num_trees_severe"]} trees. {run_line()}

| what | figure |
|---|---|
| `predict_one`, ECLO + severe outcome, no explanation | {figures["prediction only"]} |
| `predict_one` with the explanation (TreeSHAP tables) | {figures["with explanation"]} |
| the explanation alone: TreeSHAP tables | {figures["TreeSHAP tables"]} |
| the explanation alone: LightGBM's TreeSHAP (baseline) | {figures["LightGBM TreeSHAP (baseline)"]} |
| `predict_many`, 100 rows | {figures["predict_many 100"]} |
| `predict_many`, 10,000 rows | {figures["predict_many 10000"]} |
""",
    )


if __name__ == "__main__":
    main()
