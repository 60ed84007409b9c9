"""Readings in, and congestion predictions out, over a real uvicorn API and the real feed consumer.

1. REST ingest: N distinct readings (default 1,000,000: the default model's 207 sensors over consecutive 5-minute
   steps) through POST /api/traffic/readings in calls of 10,000, on SQLite and on PostgreSQL (when it answers);
   bodies are encoded before the clock starts; 1 and then 2 HTTP/1.1 connections (httpx, each run into a fresh
   database) take the next body in turn. Baseline in the
   same run: the same calls re-sent (every reading a duplicate: validation and the statement, no new rows).
2. Stream: the same N readings published into the Redis Stream, then one `python -m backend.services.feed` consumer
   started and timed until the database holds them all.
3. Congestion predictions over HTTP: POST /api/predict/congestion with distinct inline rows (12 readings each, so
   the cache rarely answers; its hits are counted from /metrics) at c=1 and c=32, beside GET /health/live.

Usage: python bench/bench_traffic.py [--readings 1000000] [--clients 1 2] [--databases sqlite postgresql]
       [--rest-only] [--seconds 5] [--client wrk|aiohttp]
Uses Redis database 14 of REDIS_URL's server under its own key prefix, and PostgreSQL at TEST_POSTGRES_URL.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import redis
from results import run_line, write_section
from sqlalchemy import create_engine, text

from backend.db.migrate import upgrade
from backend.db.session import make_engine
from backend.dev.processes import free_port, wait_until
from backend.services.feed import publish
from tests.fixtures.scratch_db import scratch_postgres, stored_readings

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_http import run_aiohttp, run_wrk  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PER_CALL = 10_000
POSTGRES = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")


def readings(count: int, sensors: list[str]) -> list[dict[str, Any]]:
    start = datetime(2020, 1, 1, tzinfo=UTC)
    out = []
    for i in range(count):
        step, s = divmod(i, len(sensors))
        moment = start + timedelta(minutes=5 * step)
        out.append({"sensor_id": sensors[s], "timestamp": moment.isoformat(), "speed_mph": 30.0 + (i * 7) % 40})
    return out


class Api:
    def __init__(self, database_url: str, logs: Path) -> None:
        redis_base = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0]
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), "DATABASE_URL": database_url, "FEED_ENABLED": "false",
                    "REDIS_URL": f"{redis_base}/14", "KEY_PREFIX": f"bench-{uuid.uuid4().hex[:6]}:"}  # fmt: skip
        upgrade(database_url)
        subprocess.run([sys.executable, "-m", "backend.dev.launcher", "--register-sensors"], env=self.env, cwd=ROOT,
                       check=True, capture_output=True)  # fmt: skip
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.logs = logs
        self.process = subprocess.Popen(
            [sys.executable, "-m", "backend.api.server", "--port", str(port), "--log-level", "warning"],
            cwd=ROOT, env=self.env, stdout=(logs / f"api-{port}.log").open("wb"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        assert wait_until(lambda: self._live(), timeout=60), "the API did not start"

    def _live(self) -> bool:
        try:
            return httpx.get(f"{self.url}/health/live", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(20)


def ingest_rest(api: Api, bodies: list[bytes], clients: int) -> tuple[float, dict[str, int]]:
    """`clients` connections (one thread and httpx client each) take the next body in turn until none is left."""
    totals = {"accepted": 0, "duplicates": 0, "rejected": 0}
    queue = iter(bodies)
    lock = threading.Lock()

    def send() -> None:
        with httpx.Client(base_url=api.url, timeout=120) as client:
            for body in queue:
                response = client.post("/api/traffic/readings", content=body,
                                       headers={"content-type": "application/json"})  # fmt: skip
                answer = response.json()
                assert response.status_code == 200, answer
                with lock:
                    totals["accepted"] += answer["accepted"]
                    totals["duplicates"] += answer["duplicates"]
                    totals["rejected"] += len(answer["rejected"])

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(send) for _ in range(clients)]:
            future.result()
    return time.perf_counter() - started, totals


def cache_hits(url: str) -> float:
    text_ = httpx.get(f"{url}/metrics").text
    return sum(float(m.group(1)) for m in re.finditer(r'prediction_cache_lookups_total\{result="hit"\} (\S+)', text_))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--client", choices=["wrk", "aiohttp"], default="wrk" if shutil.which("wrk") else "aiohttp")
    parser.add_argument(
        "--clients",
        type=int,
        nargs="+",
        default=[1, 2],
        help="connections sending readings at once; each count is a run into a fresh database",
    )
    parser.add_argument("--databases", nargs="+", choices=["sqlite", "postgresql"], default=["sqlite", "postgresql"])
    parser.add_argument("--rest-only", action="store_true", help="skip the stream and the predictions")
    args = parser.parse_args()
    load = run_wrk if args.client == "wrk" else run_aiohttp
    metadata = json.loads((ROOT / "model" / "congestion" / "metadata.json").read_text())
    sensors = [s["sensor_id"] for s in metadata["sensors"]]
    rows = readings(args.readings, sensors)
    bodies = [orjson.dumps({"readings": rows[i : i + PER_CALL]}) for i in range(0, len(rows), PER_CALL)]
    print(f"{len(rows):,} readings of {len(sensors)} sensors in {len(bodies)} calls of up to {PER_CALL:,}; "
          f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"load client for predictions: {args.client}", flush=True)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        logs = Path(tmp)
        databases: list[tuple[str, Any]] = []
        if "sqlite" in args.databases:
            databases.append(("SQLite", None))
        if "postgresql" in args.databases:
            try:
                create_engine(POSTGRES, connect_args={"connect_timeout": 2}).connect().close()
                databases.append(("PostgreSQL", lambda: scratch_postgres(POSTGRES, "traffic_bench")))
            except Exception as exc:  # noqa: BLE001 - reported and skipped
                print(f"PostgreSQL not measured: {exc}".splitlines()[0])
        runs = [(label, factory, clients) for label, factory in databases for clients in args.clients]
        ingest: list[str] = []
        rest: list[str] = []
        for number, (label, factory, clients) in enumerate(runs):
            if factory is None:
                context = contextmanager(lambda n=number: (yield f"sqlite:///{logs / f'bench-{n}.db'}"))()
            else:
                context = factory()
            with context as database_url:
                api = Api(database_url, logs)
                try:
                    seconds, totals = ingest_rest(api, bodies, clients)
                    print(f"REST ingest, {label:<10}, {clients} client(s): {len(rows) / seconds:9,.0f} readings/s "
                          f"({seconds:.1f} s; {totals})", flush=True)  # fmt: skip
                    again = bodies[: max(1, len(bodies) // 10)]
                    seconds_again, totals_again = ingest_rest(api, again, clients)
                    count = sum(len(orjson.loads(b)["readings"]) for b in again)
                    print(f"  baseline, the same calls re-sent (all duplicates): {count / seconds_again:9,.0f} "
                          f"readings/s ({totals_again})", flush=True)  # fmt: skip
                    connections = f"{clients} connection{'s' if clients > 1 else ''}"
                    ingest.append(f"| REST, {label}, {connections} | {len(rows) / seconds:,.0f} readings/s | "
                                  f"{count / seconds_again:,.0f} readings/s |")  # fmt: skip
                    if number == len(runs) - 1 and not args.rest_only:
                        rest = stream_and_predictions(api, database_url, rows, sensors, args, load, logs)
                finally:
                    api.stop()
    write_section(
        "bench_traffic",
        f"""Readings in and congestion predictions out, `make bench-traffic` (`bench/bench_traffic.py`). A real uvicorn
API and the real feed consumer. Ingest: {len(rows):,} distinct readings ({len(sensors)} sensors over consecutive
5-minute steps) in calls of {PER_CALL:,} to `POST /api/traffic/readings`, bodies encoded before the clock starts;
each run into a fresh database, over {" and then ".join(map(str, args.clients))} connection(s) (httpx, each taking
the next body). Baseline in the same run: the first tenth of the calls re-sent, every reading a duplicate
(validation and the statement, no new rows). Stream: the same readings published into the Redis Stream, then one
`python -m backend.services.feed` consumer timed from its start until the database holds them all (the last
database measured). Predictions: `POST /api/predict/congestion` with distinct inline rows of 12 readings (cold
cache: the hits are read from `/metrics`), {args.seconds:.0f} s each, load from {args.client} on the same machine;
baseline in the same run: `GET /health/live`. {run_line()}

| readings, calls of {PER_CALL:,} | readings/s | baseline: the same calls re-sent, all duplicates |
|---|---|---|
{chr(10).join(ingest)}
{chr(10).join(rest)}
""",
    )


def stream_and_predictions(
    api: Api, database_url: str, rows: list[dict], sensors: list[str], args: Any, load: Any, logs: Path
) -> list[str]:
    """On the last database measured: the feed (into a fresh database), then predictions over HTTP; answers
    the lines of their results for bench/RESULTS.md."""
    engine = make_engine(database_url)
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM traffic_readings"))
    engine.dispose()
    client = redis.Redis.from_url(api.env["REDIS_URL"])
    stream = f"{api.env['KEY_PREFIX']}readings:stream"
    started = time.perf_counter()
    for i in range(0, len(rows), 50_000):
        publish(client, stream, rows[i : i + 50_000], max_length=len(rows) + 1)
    published = time.perf_counter() - started
    feed = subprocess.Popen([sys.executable, "-m", "backend.services.feed"], cwd=ROOT,
                            env={**api.env, "FEED_BATCH": "5000"},
                            stdout=(logs / "feed.log").open("wb"), stderr=subprocess.STDOUT)  # fmt: skip
    try:
        started = time.perf_counter()
        assert wait_until(lambda: stored_readings(database_url) >= len(rows), timeout=3600, interval=0.5)
        consumed = time.perf_counter() - started
    finally:
        feed.terminate()
        feed.wait(20)
        client.delete(stream)
    print(f"stream: published {len(rows) / published:9,.0f} readings/s; consumed and stored "
          f"{len(rows) / consumed:9,.0f} readings/s (from the consumer's start-up)")  # fmt: skip
    lines = [
        f"| Redis Stream: published / consumed and stored | {len(rows) / published:,.0f} / "
        f"{len(rows) / consumed:,.0f} readings/s | |",
        "",
        "| load | `POST /api/predict/congestion`, inline rows of 12 readings | baseline: `GET /health/live` | ratio "
        "| cache hits |",
        "|---|---|---|---|---|",
    ]

    end = datetime(2021, 3, 1, 8, 0, tzinfo=UTC)
    bodies = []
    for i in range(40_000):
        last = end + timedelta(minutes=5 * i)
        recent = [{"timestamp": (last - timedelta(minutes=5 * b)).isoformat(), "speed_mph": 30.0 + (i + b) % 37}
                  for b in range(12)]  # fmt: skip
        bodies.append({"sensor_id": sensors[i % len(sensors)], "recent": recent})
    for round_, concurrency in enumerate((1, 32)):
        hits_before = cache_hits(api.url)
        fresh = bodies[round_ * 20_000 : (round_ + 1) * 20_000]  # never sent before: the cache is cold
        prediction = load(f"{api.url}/api/predict/congestion", concurrency, args.seconds, fresh)
        hits = cache_hits(api.url) - hits_before
        constant = load(f"{api.url}/health/live", concurrency, args.seconds, None)
        print(f"c={concurrency:<2} POST /api/predict/congestion: {prediction.rate:7,.0f} req/s, p50 "
              f"{prediction.p50_ms:.2f} ms, p99 {prediction.p99_ms:.2f} ms, errors {prediction.errors}, cache hits "
              f"{hits:.0f} | GET /health/live: {constant.rate:7,.0f} req/s, p50 {constant.p50_ms:.2f} ms | ratio "
              f"{prediction.rate / constant.rate:.2f}", flush=True)  # fmt: skip
        lines.append(f"| c={concurrency} | {prediction.rate:,.0f} req/s, p50 "
                     f"{prediction.p50_ms:.2f} ms, p99 {prediction.p99_ms:.2f} ms, {prediction.errors} errors | "
                     f"{constant.rate:,.0f} req/s, p50 {constant.p50_ms:.2f} ms | "
                     f"{prediction.rate / constant.rate:.2f} | {hits:.0f} |")  # fmt: skip
    return lines


if __name__ == "__main__":
    main()
