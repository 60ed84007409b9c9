"""In-process congestion prediction speed: single-row latency (p50/p99 µs) with and without neighbours' readings,
and predict_many throughput (rows/s), beside ECLO's single-row latency measured in the same run as a baseline.

Usage: python bench/bench_congestion.py [--model-dir model] [--rounds 3000] [--repeats 5]
Rows are distinct: windows of a freshly generated network (not the model's training data) at varied times and
sensors; there is no cache on this path.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
from results import run_line, write_section

from backend.ml.congestion.model import CongestionModel
from backend.ml.congestion.network import generate_network
from backend.ml.eclo.dacon import api_rows
from backend.ml.eclo.datagen import generate_dacon_frame
from backend.ml.eclo.model import EcloModel


def _percentiles(rounds: list[list[float]], markdown: bool = False) -> str:
    """Median over rounds of each round's p50 and p99: a slow spell of a shared machine moves one round."""
    us = [np.asarray(samples) * 1e6 for samples in rounds]
    p50s = [np.percentile(u, 50) for u in us]
    p99s = [np.percentile(u, 99) for u in us]
    if markdown:
        spread = f"(rounds' p50 {min(p50s):.0f}–{max(p50s):.0f})"
        return f"p50 {np.median(p50s):.1f} µs, p99 {np.median(p99s):.1f} µs {spread}"
    spread = f"(rounds {min(p50s):.0f}..{max(p50s):.0f})"
    return f"p50 {np.median(p50s):7.1f} µs   p99 {np.median(p99s):7.1f} µs   {spread}"


def _time(predict, rows: list, rounds: int) -> list[float]:  # noqa: ANN001 - any model's predict_one
    for row in rows[:100]:
        predict(row)
    samples = []
    for i in range(rounds):
        row = rows[i % len(rows)]
        started = time.perf_counter()
        predict(row)
        samples.append(time.perf_counter() - started)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=Path("model"))
    parser.add_argument("--rounds", type=int, default=3000, help="predictions per case per round")
    parser.add_argument("--repeats", type=int, default=5, help="rounds; the median round is reported")
    args = parser.parse_args()
    model = CongestionModel.load(args.model_dir / "congestion")
    speeds = generate_network(weeks=1, seed=2024).speeds
    stamps = [t.isoformat() for t in speeds.index]
    rng = np.random.default_rng(0)

    def readings(sensor: str, end: int) -> list[dict]:
        column = speeds[sensor].to_numpy()
        return [{"timestamp": stamps[i], "speed_mph": float(column[i])} for i in range(end - 11, end + 1)]

    alone, together = [], []
    for _ in range(args.rounds):
        sensor, end = str(rng.choice(model.sensor_ids)), int(rng.integers(12, len(speeds)))
        row = {"sensor_id": sensor, "readings": readings(sensor, end)}
        alone.append(row)
        together.append({**row, "neighbour_readings": {m: readings(m, end) for m in model.neighbours[sensor]}})
    eclo = EcloModel.load(args.model_dir / "eclo")
    candidates = [r for r in api_rows(generate_dacon_frame(4000, seed=7).astype(str)) if r is not None]
    outcomes = eclo.predict_many(candidates)
    eclo_rows = [r for r, o in zip(candidates, outcomes, strict=True) if not isinstance(o, Exception)]
    print(f"model congestion {model.version}, {model.metadata['num_trees']} trees, {len(model.sensor_ids)} sensors; "
          f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")  # fmt: skip
    cases = {
        "baseline: ECLO predict_one, prediction only": (lambda r: eclo.predict_one(r, False), eclo_rows),
        "congestion predict_one, own readings only": (model.predict_one, alone),
        "congestion predict_one, with neighbours": (model.predict_one, together),
    }
    timings: dict[str, list[list[float]]] = {label: [] for label in cases}
    for _ in range(args.repeats):  # interleaved, so the baseline shares each round's conditions
        for label, (predict, rows) in cases.items():
            timings[label].append(_time(predict, rows, args.rounds))
    for label, samples in timings.items():
        print(f"{label:<45}: {_percentiles(samples)}")
    many: list[str] = []
    for label, rows in (("own readings only", alone), ("with neighbours", together)):
        rounds = []
        for _ in range(3):
            started = time.perf_counter()
            model.predict_many(rows[:1000])
            rounds.append(time.perf_counter() - started)
        print(f"congestion predict_many 1000 rows, {label}: {1000 / min(rounds):8.0f} rows/s")
        many.append(f"{1000 / min(rounds):,.0f}")

    neighbours = sum(len(row["neighbour_readings"]) for row in together) / len(together)
    table = "\n".join(f"| {label} | {_percentiles(samples, markdown=True)} |" for label, samples in timings.items())
    write_section(
        "bench_congestion",
        f"""Congestion predictions in process, `make bench` (`bench/bench_congestion.py`). Rows: distinct 12-reading
windows of a freshly generated network (not the model's training data), with their neighbours' readings
({neighbours:.1f} neighbours on average) or without; no cache on this path. {args.repeats} interleaved rounds of
{args.rounds:,} predictions per case: the median of the rounds' p50 and p99, with the range of the rounds' p50s;
`predict_many`: the best of 3 calls. Baseline in the same rounds: ECLO's `predict_one`, prediction only. Model:
congestion {model.version}, {model.metadata["num_trees"]} trees, {len(model.sensor_ids)} sensors. {run_line()}

| what | figure |
|---|---|
{table}
| congestion `predict_many`, 1,000 rows (own readings / with neighbours) | {many[0]} / {many[1]} rows/s |
""",
    )


if __name__ == "__main__":
    main()
