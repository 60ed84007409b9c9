"""HTTP speed of a real uvicorn server under a load client that is not itself the bottleneck.

At 1 and 32 concurrent connections: requests/s and p50/p99 latency of POST /api/predict/eclo (varied rows,
each sent once per pass, so the cache rarely answers) and of the constant-returning GET /health/live on the
same server; then the submit-to-result time of 100-row batches through a real Celery worker.

Usage: python bench/bench_http.py [--seconds 5] [--batches 20] [--repeat 3] [--api-workers 1] [--client wrk|aiohttp]
wrk (Debian package `wrk`) is the default when installed, else an asyncio aiohttp client.
Starts its own API (default settings: access log, records, cache) and worker on Redis database 14 of REDIS_URL's
server, under its own key prefix; their logs go to a temporary folder.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
import httpx
import numpy as np

from backend.ml.dacon import api_rows
from backend.ml.datagen import generate_dacon_frame
from backend.ml.predictor import EcloModel
from backend.processes import free_port, wait_until

ROOT = Path(__file__).resolve().parents[1]
WRK_REPORT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK %d %d %f %f\\n", summary.requests, e.status + e.connect + e.read + e.write + e.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"""
WRK_POST = """
bodies = {%s}
counter = 0
threads_set_up = 0
setup = function(thread)  -- each thread starts halfway along from the previous one: no body sent twice early
  thread:set("counter", threads_set_up * math.floor(#bodies / 2))
  threads_set_up = threads_set_up + 1
end
request = function()
  counter = counter + 1
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, bodies[(counter %% #bodies) + 1])
end
"""


class Result:
    def __init__(self, rate: float, p50_ms: float, p99_ms: float, errors: int) -> None:
        self.rate, self.p50_ms, self.p99_ms, self.errors = rate, p50_ms, p99_ms, errors


def bench_env(**settings: str) -> dict[str, str]:
    """A benchmark stack's environment: Redis database 14 of REDIS_URL's server under a key prefix and a queue of
    its own, no feed consumer, no API keys (AUTH_ENABLED=false), the project importable; `settings` add to it."""
    redis_base = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0]
    name = uuid.uuid4().hex[:6]
    return {**os.environ, "PYTHONPATH": str(ROOT), "REDIS_URL": f"{redis_base}/14", "KEY_PREFIX": f"bench-{name}:",
            "CELERY_QUEUE": f"bench-{name}", "FEED_ENABLED": "false", "AUTH_ENABLED": "false",
            **settings}  # fmt: skip


def run_wrk(url: str, concurrency: int, seconds: float, bodies: list[dict] | None) -> Result:
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "bench.lua"
        post = "" if bodies is None else WRK_POST % ",".join(f"[==[{json.dumps(b)}]==]" for b in bodies)
        script.write_text(post + WRK_REPORT)
        command = ["wrk", "-t", str(min(concurrency, 2)), "-c", str(concurrency), "-d", f"{round(seconds)}s", "-s",
                   str(script), url]  # fmt: skip
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    _, count, errors, p50, p99 = next(x for x in out.splitlines() if x.startswith("WRK ")).split()
    return Result(int(count) / seconds, float(p50), float(p99), int(errors))


async def _aiohttp_load(url: str, concurrency: int, seconds: float, bodies: list[dict] | None) -> Result:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    counter = iter(range(10**9))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def client() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                if bodies is None:
                    request = session.get(url)
                else:
                    request = session.post(url, json=bodies[next(counter) % len(bodies)])
                async with request as response:
                    await response.read()
                    errors += response.status != 200
                latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(client() for _ in range(concurrency)))
    ms = np.asarray(latencies) * 1e3
    return Result(len(latencies) / seconds, float(np.percentile(ms, 50)), float(np.percentile(ms, 99)), errors)


def run_aiohttp(url: str, concurrency: int, seconds: float, bodies: list[dict] | None) -> Result:
    return asyncio.run(_aiohttp_load(url, concurrency, seconds, bodies))


async def _batches(base: str, rows: list[dict], count: int) -> list[float]:
    timings = []
    async with aiohttp.ClientSession() as session:
        for i in range(count):
            items = rows[i * 100 : (i + 1) * 100]
            started = time.perf_counter()
            async with session.post(f"{base}/api/predict/eclo/batch", json={"items": items}) as response:
                accepted = await response.json()
            while True:
                async with session.get(f"{base}{accepted['poll_url']}") as response:
                    body = await response.json()
                if body["status"] in ("success", "partial", "failure"):
                    break
                await asyncio.sleep(0.005)
            timings.append(time.perf_counter() - started)
            assert body["status"] == "success", body
    return timings


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--api-workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of the c=32 pair (the ratio's median)")
    parser.add_argument("--client", choices=["wrk", "aiohttp"], default="wrk" if shutil.which("wrk") else "aiohttp")
    args = parser.parse_args()
    load = run_wrk if args.client == "wrk" else run_aiohttp

    model = EcloModel.load(ROOT / "model" / "eclo")
    candidates = [r for r in api_rows(generate_dacon_frame(60_000, seed=99).astype(str)) if r is not None]
    outcomes = model.predict_many(candidates)
    rows = [row for row, outcome in zip(candidates, outcomes, strict=True) if not isinstance(outcome, Exception)]
    redis_base = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0]
    port = free_port()
    env = {**os.environ, "REDIS_URL": f"{redis_base}/14", "KEY_PREFIX": f"bench-{uuid.uuid4().hex[:6]}:",
           "MODEL_DIR": str(ROOT / "model"), "PYTHONPATH": str(ROOT)}  # fmt: skip
    logs = Path(tempfile.mkdtemp(prefix="bench-"))
    api = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "backend.main:app", "--port", str(port), "--workers", str(args.api_workers)],
        cwd=ROOT, env=env, stdout=(logs / "api.log").open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "backend.tasks", "worker", "-c", "2", "--loglevel", "WARNING",
         "-n", f"bench-{port}@%h", "--without-gossip", "--without-mingle"], cwd=ROOT, env=env,
        stdout=(logs / "worker.log").open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        assert wait_until(lambda: _ok(f"{base}/health/live"), timeout=30)
        print(f"uvicorn, {args.api_workers} process(es), {platform.machine()} with {os.cpu_count()} cores, "
              f"Python {platform.python_version()}; model {model.version} ({model.metadata['num_trees']} trees); "
              f"load client {args.client} on the same machine")  # fmt: skip
        ratios = []
        offset = 0
        for concurrency, rounds in ((1, 1), (32, args.repeat)):
            for _ in range(rounds):
                rates = {}
                for name, path, post in (("GET /health/live (constant)", "/health/live", False),
                                         ("POST /api/predict/eclo", "/api/predict/eclo", True)):  # fmt: skip
                    bodies = None
                    if post:
                        bodies = (rows[offset:] + rows[:offset])[:20_000]
                        offset = (offset + 20_000) % len(rows)
                    result = load(base + path, concurrency, args.seconds, bodies)
                    rates[path] = result.rate
                    print(f"{name:<28} c={concurrency:<3} {result.rate:8.0f} req/s   p50 {result.p50_ms:6.2f} ms   "
                          f"p99 {result.p99_ms:6.2f} ms   non-200 {result.errors}")  # fmt: skip
                if concurrency == 32:
                    ratios.append(rates["/api/predict/eclo"] / rates["/health/live"])
        print(f"prediction / constant throughput at c=32: median {statistics.median(ratios):.2f} "
              f"of {', '.join(f'{r:.2f}' for r in ratios)}")  # fmt: skip
        assert wait_until(lambda: _ok(f"{base}/health"), timeout=30)
        timings = asyncio.run(_batches(base, rows, args.batches))
        print(f"batch of 100, submit to result: p50 {statistics.median(timings) * 1e3:.1f} ms, "
              f"max {max(timings) * 1e3:.1f} ms over {len(timings)} batches")  # fmt: skip
    finally:
        for process in (api, worker):
            process.terminate()
            process.wait()


if __name__ == "__main__":
    main()
