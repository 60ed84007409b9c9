"""/health under a crowd, and batches beside it: the probe storm that used to lock batch submission up.

A real uvicorn API (default settings) and a real prefork Celery worker (2 processes) on a Redis database of their
own and a SQLite file. Load from `wrk` (2 threads): `GET /health` at 100 connections for 15 s, then a batch of
100 rows submitted and timed to its result; then 200 connections for 15 s while another thread submits a batch of
20 rows every 0.5 s and times each to its result. Baseline in the same run: `GET /health/live` (a constant) at
the same concurrency. Medians of the rounds are printed with each round.

Usage: python bench/bench_health.py [--seconds 15] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from backend.db.migrate import upgrade
from backend.dev.processes import ProcessGroup, free_port, wait_until
from backend.ml.eclo.dacon import api_rows, read_text_csv
from backend.ml.eclo.datagen import write_dacon_csv

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_http import Result, bench_env, run_wrk  # noqa: E402
from results import run_line, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def batch_seconds(api: httpx.Client, rows: list[dict]) -> float:
    started = time.perf_counter()
    response = api.post("/api/predict/eclo/batch", json={"items": rows})
    assert response.status_code == 202, response.text
    poll = response.json()["poll_url"]
    while api.get(poll).json()["status"] not in ("success", "partial", "failure"):
        time.sleep(0.01)
    return time.perf_counter() - started


def show(label: str, results: list[Result]) -> str:
    rate = statistics.median(r.rate for r in results)
    p50 = statistics.median(r.p50_ms for r in results)
    p99s = [r.p99_ms for r in results]
    p99 = statistics.median(p99s)
    rounds = ", ".join(f"{p:.1f}" for p in p99s)
    errors = sum(r.errors for r in results)
    row = f"| {label} | {rate:,.0f} req/s | p50 {p50:.1f} ms | p99 {p99:.1f} ms ({rounds}) | {errors} |"
    print(row)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-health-"))
    rows = [r for r in api_rows(read_text_csv(write_dacon_csv(folder / "rows.csv", 400, seed=3))) if r][:100]
    database_url = f"sqlite:///{folder / 'bench.db'}"
    upgrade(database_url)
    env = bench_env(DATABASE_URL=database_url, DATA_DIR=str(folder / "data"))
    group = ProcessGroup(folder, env)
    try:
        port = free_port()
        group.spawn("api", [sys.executable, "-m", "backend.api.server", "--port", str(port),
                            "--log-level", "warning"])  # fmt: skip
        group.spawn("worker", [sys.executable, "-m", "celery", "-A", "backend.tasks", "worker", "-c", "2",
                               "--loglevel", "WARNING", "-n", f"{env['CELERY_QUEUE']}@%h"])  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=url, timeout=60) as api:
            assert wait_until(lambda: _ok(api), timeout=60), "the stack did not become healthy"
            print(f"# bench_health: {args.seconds:.0f} s per measurement, {args.rounds} rounds, wrk -t2")
            table = [
                "| load | throughput | p50 | p99 (rounds) | errors (non-2xx, socket, 2 s timeout) |",
                "|---|---|---|---|---|",
            ]
            print(table[0])
            print(table[1])
            for connections in (100, 200):
                health, live, batches = [], [], []
                for _ in range(args.rounds):
                    live.append(run_wrk(f"{url}/health/live", connections, args.seconds, None))
                    if connections == 100:
                        health.append(run_wrk(f"{url}/health", connections, args.seconds, None))
                        batches.append(batch_seconds(api, rows))
                    else:
                        stop = threading.Event()

                        def submit(stop: threading.Event = stop, timings: list[float] = batches) -> None:
                            while not stop.is_set():
                                timings.append(batch_seconds(api, rows[:20]))
                                stop.wait(0.5)

                        submitter = threading.Thread(target=submit)
                        submitter.start()
                        health.append(run_wrk(f"{url}/health", connections, args.seconds, None))
                        stop.set()
                        submitter.join()
                table.append(show(f"`GET /health/live`, {connections} connections (baseline)", live))
                beside = "then a batch of 100" if connections == 100 else "batches of 20 submitted beside it"
                table.append(show(f"`GET /health`, {connections} connections, {beside}", health))
                p50, worst = statistics.median(batches) * 1e3, max(batches) * 1e3
                table.append(
                    f"| batch submit to result ({len(batches)} batches) | | p50 {p50:.0f} ms | max {worst:.0f} ms | |"
                )
                print(table[-1])
    finally:
        group.stop_all()
    rows_text = "\n".join(table)
    write_section(
        "bench_health",
        f"""`/health` under a crowd, with batches beside it: `python bench/bench_health.py` (no make target). A real
uvicorn API (default settings) and a real prefork Celery worker (2 processes), a SQLite file. Load: wrk -t2 on
the same machine, {args.seconds:.0f} s per measurement, medians of {args.rounds} rounds (each round's p99 in
brackets): `GET /health` at 100 connections, then a batch of 100 rows timed from submission to its result; then
200 connections while a batch of 20 rows is submitted every 0.5 s. Baseline in the same run: the constant
`GET /health/live` at the same concurrency. Errors are wrk's: non-2xx, socket errors and 2 s timeouts. No cache
is involved. {run_line()}

{rows_text}
""",
    )
    return 0


def _ok(api: httpx.Client) -> bool:
    try:
        return api.get("/health").status_code == 200
    except httpx.HTTPError:
        return False


if __name__ == "__main__":
    raise SystemExit(main())
