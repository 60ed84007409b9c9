"""The explore engine on a big table: structured queries through DuckDB, and proximity counts through a k-d tree.

A generated table of N rows (default 1,000,000: numbers, categories, an hourly date-time over nine years and
coordinates in Daegu's box) is stored as Parquet through `write_parquet` in a temporary folder. Each query runs
through `run_query` once cold (the engine's database cache cleared: opening the file's sandboxed database is in
it) and then ROUNDS more times, of which the median is reported. Baseline in the same run: the same query in
pandas on the same data already in memory (its `read_parquet` is timed once, apart), checked to give the same
numbers. DuckDB uses the machine's cores; pandas one.

Proximity: `near` for every row of a table of 10,000 points over another of 10,000 points (radius 500 m), cold
and median of ROUNDS, against a brute-force haversine (numpy, every pair) on 1,000 x 1,000 of the points, whose
counts `near` must equal; the brute force's time for 10,000 x 10,000 is that times 100 (it grows with the pairs).

Usage: python bench/bench_explore.py [--rows 1000000] [--rounds 5] [--points 10000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backend.explore import engine
from backend.explore.query import run_query
from backend.explore.spatial import haversine_m, near
from backend.explore.tables import TableFile, profile_table, write_parquet
from backend.schemas.explore import TableQuery

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import run_line, write_section  # noqa: E402

GU = ["중구", "동구", "서구", "남구", "북구", "수성구", "달서구", "달성군"]
KINDS = [f"유형{i:02d}" for i in range(20)]
LAT, LON = (35.60, 36.02), (128.35, 128.78)  # Daegu's box


def generate(rows: int, seed: int = 0) -> TableFile:
    rng = np.random.default_rng(seed)
    start = np.datetime64("2015-01-01T00", "h")
    frame = pd.DataFrame(
        {
            "gu": pd.Series(np.array(GU, dtype=object)[rng.integers(0, len(GU), rows)], dtype="str"),
            "kind": pd.Series(np.array(KINDS, dtype=object)[rng.integers(0, len(KINDS), rows)], dtype="str"),
            "score": rng.gamma(2.0, 3.0, rows).round(3),
            "speed": rng.choice([30, 50, 60, 80, 100], rows).astype(np.int64),
            "when": (start + rng.integers(0, 9 * 365 * 24, rows).astype("timedelta64[h]")).astype("datetime64[us]"),
            "lat": rng.uniform(*LAT, rows),
            "lon": rng.uniform(*LON, rows),
        }
    )
    frame.loc[rng.random(rows) < 0.02, "score"] = np.nan
    kinds = {"gu": "text", "kind": "text", "score": "number", "speed": "integer", "when": "datetime"}
    kinds |= {"lat": "number", "lon": "number"}
    return TableFile(frame, "utf-8", ",", list(frame.columns), kinds=kinds)


QUERIES: dict[str, dict[str, Any]] = {
    "filter + group-by + mean": {
        "filters": [
            {"column": "score", "op": "gt", "value": 2.5},
            {"column": "gu", "op": "in", "value": ["중구", "남구", "수성구", "달서구"]},
        ],
        "group_by": ["kind"],
        "aggregates": [{"op": "count"}, {"op": "mean", "column": "score"}],
    },
    "percentile (p90 and median by group)": {
        "group_by": ["gu"],
        "aggregates": [
            {"op": "percentile", "column": "score", "q": 0.9},
            {"op": "median", "column": "score"},
        ],
    },
    "cross table (gu x kind, mean)": {
        "crosstab": {"row": "gu", "column": "kind", "value": {"op": "mean", "column": "score"}},
    },
    "time pattern (by hour: count, mean)": {
        "time": {"column": "when", "by": "hour"},
        "aggregates": [{"op": "count"}, {"op": "mean", "column": "score"}],
    },
}


def pandas_answers(frame: pd.DataFrame) -> dict[str, Callable[[], pd.DataFrame]]:
    def filtered() -> pd.DataFrame:
        kept = frame[(frame["score"] > 2.5) & frame["gu"].isin(["중구", "남구", "수성구", "달서구"])]
        return kept.groupby("kind").agg(count=("score", "size"), mean_score=("score", "mean"))

    def percentile() -> pd.DataFrame:
        grouped = frame.groupby("gu")["score"]
        return pd.DataFrame({"p90_score": grouped.quantile(0.9), "median_score": grouped.median()})

    def crosstab() -> pd.DataFrame:
        return frame.pivot_table(index="gu", columns="kind", values="score", aggfunc="mean")

    def time_pattern() -> pd.DataFrame:
        hours = frame["when"].dt.hour
        return frame.groupby(hours).agg(count=("score", "size"), mean_score=("score", "mean"))

    return dict(zip(QUERIES, (filtered, percentile, crosstab, time_pattern), strict=True))


def same_numbers(answer: list[dict[str, Any]], truth: pd.DataFrame) -> bool:
    """The engine's rows against pandas' frame (index = the first key)."""
    for row in answer:
        key, *values = row.items()
        expected = truth.loc[key[1]]
        for name, value in values:
            if not np.isclose(value, expected[name], rtol=1e-9, equal_nan=True):
                return False
    return len(answer) == len(truth)


def timed(call: Callable[[], Any], rounds: int) -> tuple[float, list[float], Any]:
    """The first (cold) run's time, the times of `rounds` more, and the last answer (milliseconds)."""
    started = time.perf_counter()
    answer = call()
    cold = (time.perf_counter() - started) * 1000
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        answer = call()
        times.append((time.perf_counter() - started) * 1000)
    return cold, times, answer


def random_points(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"lat": rng.uniform(35.80, 35.92, rows), "lon": rng.uniform(128.50, 128.68, rows)})


def points_file(frame: pd.DataFrame, folder: Path, name: str) -> Path:
    path = folder / f"{name}.parquet"
    write_parquet(TableFile(frame, "utf-8", ",", list(frame.columns), kinds=dict.fromkeys(frame, "number")), path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--points", type=int, default=10_000)
    args = parser.parse_args()

    lines = [
        run_line(),
        "",
        f"Table: {args.rows:,} generated rows (2 categories, 2 numbers, an hourly date-time over nine years, "
        "coordinates), Parquet through `write_parquet`. Engine: `run_query` (DuckDB, all cores); cold = first "
        f"run with the engine's database cache cleared; warm = median of {args.rounds} more. Baseline: the same "
        "query in pandas (one core) on the same data already in memory, median of as many rounds.",
        "",
    ]
    with tempfile.TemporaryDirectory(prefix="bench-explore-") as scratch:
        folder = Path(scratch)
        table = generate(args.rows)
        path = folder / "table.parquet"
        started = time.perf_counter()
        write_parquet(table, path)
        write_ms = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        frame = pd.read_parquet(path)
        read_ms = (time.perf_counter() - started) * 1000
        engine.clear_cache()
        started = time.perf_counter()
        profile = profile_table(path)
        profile_ms = (time.perf_counter() - started) * 1000
        assert profile.coordinates is not None and profile.coordinates.latitude == "lat"

        lines += [
            "| query | engine cold ms | engine warm ms (median) | pandas in memory ms (median) | same numbers |",
            "|---|---:|---:|---:|---|",
        ]
        baselines = pandas_answers(frame)
        for name, body in QUERIES.items():
            query = TableQuery.model_validate(body)
            engine.clear_cache()
            cold, warm, answer = timed(lambda q=query: run_query(path, q, timeout_seconds=30), args.rounds)
            _, base, truth = timed(baselines[name], args.rounds)
            ok = same_numbers(answer.rows, truth)
            lines.append(
                f"| {name} | {cold:.1f} | {statistics.median(warm):.1f} | {statistics.median(base):.1f} | "
                f"{'yes' if ok else 'NO'} |"
            )
            print(lines[-1], flush=True)
        lines += [
            "",
            f"Once: `write_parquet` {write_ms:.0f} ms, `profile_table` {profile_ms:.0f} ms (every column, at upload), "
            f"pandas `read_parquet` {read_ms:.0f} ms.",
            "",
        ]

        n = args.points
        a, b = random_points(n, 1), random_points(n, 2)
        a_path, b_path = points_file(a, folder, "a"), points_file(b, folder, "b")
        cold, warm, result = timed(lambda: near(a_path, ("lat", "lon"), b_path, ("lat", "lon"), 500.0), args.rounds)
        m = min(1000, n)
        sub_a, sub_b = a.head(m), b.head(m)

        def brute() -> np.ndarray:
            distances = haversine_m(
                sub_a["lat"].to_numpy()[:, None],
                sub_a["lon"].to_numpy()[:, None],
                sub_b["lat"].to_numpy()[None, :],
                sub_b["lon"].to_numpy()[None, :],
            )
            return (distances <= 500.0).sum(axis=1)

        _, brute_times, brute_counts = timed(brute, args.rounds)
        sub_a_path, sub_b_path = points_file(sub_a, folder, "sub_a"), points_file(sub_b, folder, "sub_b")
        small = near(sub_a_path, ("lat", "lon"), sub_b_path, ("lat", "lon"), 500.0, limit=m)
        equal = {r["row"]: r["count"] for r in small.rows} == dict(enumerate(brute_counts.tolist()))
        brute_ms = statistics.median(brute_times)
        lines += [
            f"Proximity: radius 500 m, points uniform over 0.12 x 0.18 degrees of Daegu "
            f"(mean {result.summary['mean_count']:.1f} neighbours a row).",
            "",
            "| proximity | cold ms | warm ms (median) |",
            "|---|---:|---:|",
            f"| `near` {n:,} x {n:,} (k-d tree, reading both files) | {cold:.1f} | {statistics.median(warm):.1f} |",
            f"| brute-force haversine {m:,} x {m:,} (numpy, every pair) | - | {brute_ms:.1f} |",
            f"| brute force {n:,} x {n:,}, extrapolated (x {(n / m) ** 2:.0f}) | - | {brute_ms * (n / m) ** 2:.0f} |",
            "",
            f"`near` on the {m:,} x {m:,} subset gives the brute force's counts: {'yes' if equal else 'NO'}.",
        ]
        print("\n".join(lines[-8:]), flush=True)
    write_section("explore", "\n".join(lines))


if __name__ == "__main__":
    main()
