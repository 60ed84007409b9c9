"""HTTP speed of a real uvicorn server under a load client that is not itself the bottleneck.

At 1 and 32 concurrent connections (wrk -t1, and -t2 beside it at 32): requests/s and p50/p99 latency of
POST /api/predict/eclo, of the constant GET /health/live on the same server, and of a bare FastAPI route (its own
uvicorn process, started beside) as the baseline; then the submit-to-result time of 100-row batches through a
real Celery worker. Every prediction request carries a row sent nowhere else in the run (each wrk thread walks
its own stride of the rows), so no cache can answer it; the API's cache hits are read from /metrics around each
measurement and printed. `--warm` sends each measurement's rows once before it: a warm cache, on purpose.

Usage: python bench/bench_http.py [--seconds 5] [--rounds 3] [--batches 20] [--warm]
Needs wrk (Debian package `wrk`). Starts its own API (default settings: API keys on, records in a SQLite file,
metrics, cache) and worker on Redis database 14 of REDIS_URL's server, under its own key prefix; logs go to a
temporary folder.
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
from collections.abc import Callable
from functools import partial
from pathlib import Path

import aiohttp
import httpx
import numpy as np
from results import run_line, write_section

from backend.core.config import Settings
from backend.dev.processes import ProcessGroup, free_port, wait_until
from backend.ml.eclo.dacon import api_rows
from backend.ml.eclo.datagen import generate_dacon_frame
from backend.ml.eclo.model import EcloModel

ROOT = Path(__file__).resolve().parents[1]
WRK_REPORT = """
done = function(summary, latency, requests)
  if sent then io.write(string.format("SENT %d\\n", sent())) end
  local e = summary.errors
  io.write(string.format("WRK %d %d %f %f\\n", summary.requests, e.status + e.connect + e.read + e.write + e.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"""
WRK_POST = """
bodies = {%s}
headers = {%s}
threads_set_up = 0
all_threads = {}
setup = function(thread)  -- thread k sends bodies k, k+T, k+2T, ...: no body is sent twice until they run out
  thread:set("first", threads_set_up)
  thread:set("stride", %d)
  threads_set_up = threads_set_up + 1
  table.insert(all_threads, thread)
end
sent = function()  -- how far into the bodies any thread went (sent, answered or not)
  local last = 0
  for _, thread in ipairs(all_threads) do
    local n = thread:get("counter")
    if n > 0 then last = math.max(last, thread:get("first") + (n - 1) * thread:get("stride") + 1) end
  end
  return last
end
counter = 0
request = function()
  local i = first + counter * stride
  counter = counter + 1
  return wrk.format("POST", nil, headers, bodies[(i %% #bodies) + 1])
end
"""


class Result:
    def __init__(self, rate: float, p50_ms: float, p99_ms: float, errors: int, requests: int = 0) -> None:
        self.rate, self.p50_ms, self.p99_ms, self.errors = rate, p50_ms, p99_ms, errors
        self.requests = requests  # wrk: how far into the bodies it went (answered or still in flight at the end)


def bench_env(**settings: str) -> dict[str, str]:
    """A benchmark stack's environment: Redis database 14 of REDIS_URL's server under a key prefix and a queue of
    its own, no feed consumer, no API keys (AUTH_ENABLED=false), the project importable; `settings` add to it.
    With keys on, the per-key rate limit is raised out of the way but still checked: its cost stays measured."""
    redis_base = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0]
    name = uuid.uuid4().hex[:6]
    return {**os.environ, "PYTHONPATH": str(ROOT), "REDIS_URL": f"{redis_base}/14", "KEY_PREFIX": f"bench-{name}:",
            "CELERY_QUEUE": f"bench-{name}", "FEED_ENABLED": "false", "AUTH_ENABLED": "false",
            "RATE_LIMIT_PER_SECOND": "1000000", "RATE_LIMIT_BURST": "1000000", **settings}  # fmt: skip


def run_wrk(
    url: str,
    concurrency: int,
    seconds: float,
    bodies: list[dict] | None,
    threads: int | None = None,
    headers: dict[str, str] | None = None,
) -> Result:
    """wrk against `url`: GET, or POST of `bodies` (each sent once while they last); `threads` defaults to 2."""
    threads = min(concurrency, threads or 2)
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "bench.lua"
        post = ""
        if bodies is not None:
            fields = ",".join(
                f'["{k}"] = "{v}"' for k, v in {"Content-Type": "application/json", **(headers or {})}.items()
            )
            post = WRK_POST % (",".join(f"[==[{json.dumps(b)}]==]" for b in bodies), fields, threads)
        script.write_text(post + WRK_REPORT)
        command = ["wrk", "-t", str(threads), "-c", str(concurrency), "-d", f"{round(seconds)}s", "-s",
                   str(script), url]  # fmt: skip
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    _, count, errors, p50, p99 = next(x for x in out.splitlines() if x.startswith("WRK ")).split()
    sent = next((int(x.split()[1]) for x in out.splitlines() if x.startswith("SENT ")), int(count))
    return Result(int(count) / seconds, float(p50), float(p99), int(errors), sent)


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
    p50, p99 = float(np.percentile(ms, 50)), float(np.percentile(ms, 99))
    return Result(len(latencies) / seconds, p50, p99, errors, len(latencies))


def run_aiohttp(url: str, concurrency: int, seconds: float, bodies: list[dict] | None) -> Result:
    return asyncio.run(_aiohttp_load(url, concurrency, seconds, bodies))


async def _batches(base: str, rows: list[dict], count: int, headers: dict[str, str]) -> list[float]:
    timings = []
    async with aiohttp.ClientSession(headers=headers) as session:
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


def distinct_rows(count: int, seed: int = 99) -> list[dict]:
    """`count` valid API rows, no two with the same model input (so no cache can answer one from another)."""
    model = EcloModel.load(ROOT / "model" / "eclo")
    rows: list[dict] = []
    seen: set[bytes] = set()
    while len(rows) < count:
        candidates = [r for r in api_rows(generate_dacon_frame(count, seed=seed).astype(str)) if r is not None]
        for row in candidates:
            try:
                encoded = model.encode(row)
            except Exception:
                continue
            key = encoded.features.tobytes() + "\n".join(encoded.notes).encode()
            if key not in seen:
                seen.add(key)
                rows.append(row)
        seed += 1
    return rows[:count]


def cache_hits(base: str, headers: dict[str, str]) -> float:
    """The API's prediction cache hits so far (its /metrics)."""
    text = httpx.get(f"{base}/metrics", headers=headers, timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("prediction_cache_lookups_total{") and 'result="hit"' in line
    )


def make_key(database_url: str) -> str:
    """A key with every scope in the stack's database (the API runs with its default AUTH_ENABLED=true)."""
    from backend.db.migrate import upgrade
    from backend.db.session import make_engine, session_factory
    from backend.services.keys import SCOPES, create_key

    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        with session_factory(engine)() as session:
            return create_key(session, "bench", list(SCOPES))[1]
    finally:
        engine.dispose()


def make_challenger(versions_dir: Path) -> str:
    """A second version of the default ECLO model for the shadow measurement: the same model less its last tree
    (the same features, vocabulary and cost per row, other bytes: another version), put where trained versions go."""
    import lightgbm as lgb

    from backend.core.storage import LocalStorage
    from backend.ml.artifacts import METADATA_FILE, file_version, read_metadata, write_json_atomic
    from backend.ml.eclo.model import SEVERE_MODEL_FILE
    from backend.ml.versions import ModelVersions

    default = ROOT / "model" / "eclo"
    store = ModelVersions(ROOT / "model", LocalStorage(versions_dir.parent), work_dir=versions_dir)
    partial_folder = store.partial_folder("eclo", "bench")
    booster = lgb.Booster(model_file=str(default / "model.txt"))
    booster.save_model(str(partial_folder / "model.txt"), num_iteration=booster.num_trees() - 1)
    shutil.copy(default / SEVERE_MODEL_FILE, partial_folder / SEVERE_MODEL_FILE)
    metadata = read_metadata(default)
    metadata["version"] = file_version(partial_folder / "model.txt", partial_folder / SEVERE_MODEL_FILE)
    metadata["num_trees"] = booster.num_trees() - 1
    write_json_atomic(partial_folder / METADATA_FILE, metadata)
    return store.publish("eclo", partial_folder)


def shadow_counts(base: str, headers: dict[str, str], database_url: str) -> dict[str, float]:
    """Shadow scores recorded by the workers (the stack's database) and skipped by the API (its /metrics)."""
    from sqlalchemy import func, select

    from backend.db.models import ShadowScore
    from backend.db.session import make_engine

    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            counts = {"scored": float(connection.scalar(select(func.count()).select_from(ShadowScore)) or 0)}
    finally:
        engine.dispose()
    for line in httpx.get(f"{base}/metrics", headers=headers, timeout=10).text.splitlines():
        if line.startswith("shadow_scores_total{") and 'outcome="skipped"' in line:
            counts["skipped"] = counts.get("skipped", 0.0) + float(line.rsplit(" ", 1)[1])
    return counts


def start_server(group: ProcessGroup, name: str, command: list[str], ready_url: str) -> subprocess.Popen[bytes]:
    """`command` spawned in `group` (its log: `<logs>/<name>.log`), once `ready_url` answers 200."""
    process = group.spawn(name, command)
    if not wait_until(lambda: process.poll() is None and _ok(ready_url), timeout=120):
        group.stop_all()
        raise SystemExit(f"{name} did not start; see {group.log_file(name)}")
    return process


class Rows:
    """Hands out slices of distinct rows, each row once per run: a cold cache for every measurement."""

    def __init__(self, rows: list[dict]) -> None:
        self.rows, self.offset = rows, 0

    def take(self, count: int) -> list[dict]:
        if self.offset + count > len(self.rows):
            self.offset = 0  # rows come back: the cache may answer, and the hits are counted
        taken = self.rows[self.offset : self.offset + count]
        self.offset += count
        return taken

    def used(self, slice_start: int, requests: int, count: int) -> None:
        """Only `requests` of the `count` handed out were sent: the rest go to the next measurement."""
        self.offset = slice_start + min(requests, count)


def measure(
    label: str,
    url: str,
    rounds: int,
    seconds: float,
    concurrency: int,
    threads: int,
    rows: Rows | None = None,
    headers: dict[str, str] | None = None,
    hits: Callable[[], float] | None = None,
) -> dict:
    """Median of `rounds` wrk runs; POST of fresh distinct rows when `rows` is given."""
    rounds_run = [run_round(url, seconds, concurrency, threads, rows, headers, hits) for _ in range(rounds)]
    return summarize(label, concurrency, threads, rounds_run, hits is not None)


def run_round(
    url: str,
    seconds: float,
    concurrency: int,
    threads: int,
    rows: Rows | None = None,
    headers: dict[str, str] | None = None,
    hits: Callable[[], float] | None = None,
) -> tuple[Result, float]:
    """One wrk run and the cache hits it caused."""
    bodies = None
    if rows is not None:
        start = rows.offset
        bodies = rows.take(ROWS_PER_SECOND * round(seconds))
    before = hits() if hits else 0.0
    result = run_wrk(url, concurrency, seconds, bodies, threads=threads, headers=headers)
    if rows is not None and bodies is not None:
        rows.used(start, result.requests, len(bodies))
    return result, (hits() - before) if hits else 0.0


def summarize(
    label: str, concurrency: int, threads: int, rounds_run: list[tuple[Result, float]], counts_hits: bool
) -> dict:
    """The medians of the rounds, printed as a row of TABLE_HEAD."""
    results = [result for result, _ in rounds_run]
    hit_counts = [count for _, count in rounds_run]
    rate = statistics.median(r.rate for r in results)
    summary = {
        "label": label, "concurrency": concurrency, "threads": threads, "rate": rate,
        "p50": statistics.median(r.p50_ms for r in results), "p99": statistics.median(r.p99_ms for r in results),
        "errors": sum(r.errors for r in results), "hits": sum(hit_counts),
        "rounds": [r.rate for r in results],
    }  # fmt: skip
    rounds_text = ", ".join(f"{r:,.0f}" for r in summary["rounds"])
    summary["row"] = (f"| {label} | c={concurrency}, wrk -t{threads} | {rate:,.0f} req/s ({rounds_text}) | "
                      f"{summary['p50']:.2f} / {summary['p99']:.2f} ms | {summary['errors']} | "
                      f"{format(summary['hits'], '.0f') if counts_hits else ''} |")  # fmt: skip
    print(summary["row"], flush=True)
    return summary


# A measurement takes at most this many rows per second of it (more than any server here answers).
ROWS_PER_SECOND = 8_000
TABLE_HEAD = "| what | load | req/s: median (rounds) | p50 / p99 | errors | cache hits |\n|---|---|---|---|---|---|"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3, help="rounds per measurement; medians are printed")
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--warm", action="store_true", help="send each measurement's rows twice: a warm cache")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed (Debian package `wrk`)")

    needed = ROWS_PER_SECOND * round(args.seconds) * args.rounds * 11
    print(f"making {needed:,} distinct rows ...", flush=True)
    rows = Rows(distinct_rows(needed))
    logs = Path(tempfile.mkdtemp(prefix="bench-"))
    database_url = f"sqlite:///{logs / 'bench.db'}"
    key = make_key(database_url)
    headers = {"Authorization": f"Bearer {key}"}
    env = bench_env(MODEL_DIR=str(ROOT / "model"), DATABASE_URL=database_url, DATA_DIR=str(logs / "data"),
                    AUTH_ENABLED="true", MODEL_RELOAD_SECONDS="1")  # fmt: skip
    challenger = make_challenger(logs / "data" / "models")
    port, bare_port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    group = ProcessGroup(logs, env)
    start_server(group, "bare", [sys.executable, "-m", "uvicorn", "bench.peers.bare_app:app", "--port",
                                 str(bare_port)], f"http://127.0.0.1:{bare_port}/ping")  # fmt: skip
    start_server(group, "api", [sys.executable, "-m", "backend.api.server", "--port", str(port)],
                 f"{base}/health/live")  # fmt: skip
    group.spawn("worker", [sys.executable, "-m", "celery", "-A", "backend.tasks", "worker", "-c", "2", "--loglevel",
                           "WARNING", "-n", f"bench-{port}@%h", "--without-gossip", "--without-mingle"])  # fmt: skip
    hits = partial(cache_hits, base, headers)
    try:
        print(f"# bench_http: uvicorn (httptools, uvloop), 1 process, defaults on (API keys, records in SQLite, "
              f"metrics, ECLO cache in-process); {platform.machine()} with {os.cpu_count()} cores, Python "
              f"{platform.python_version()}; load client wrk on the same machine; {args.seconds:.0f} s per round, "
              f"medians of {args.rounds} rounds; every prediction a distinct row"
              f"{' sent twice (warm cache)' if args.warm else ' (cold cache)'}")  # fmt: skip
        print(TABLE_HEAD)
        bare_url, live_url, predict_url = (
            f"http://127.0.0.1:{bare_port}/ping",
            f"{base}/health/live",
            f"{base}/api/predict/eclo",
        )
        results = {}
        for concurrency in (1, 32):
            results["bare", concurrency] = measure("bare FastAPI route (constant)", bare_url, args.rounds,
                                                   args.seconds, concurrency, 1)  # fmt: skip
            results["live", concurrency] = measure("`GET /health/live` (constant)", live_url, args.rounds,
                                                   args.seconds, concurrency, 1)  # fmt: skip
            for threads in (1, 2) if concurrency > 1 else (1,):
                if args.warm:
                    start = rows.offset
                    measure("warm-up (not counted)", predict_url, 1, args.seconds, concurrency, threads, rows,
                            headers, hits)  # fmt: skip
                    rows.offset = start
                results["predict", concurrency, threads] = measure(
                    "`POST /api/predict/eclo`",
                    predict_url,
                    args.rounds,
                    args.seconds,
                    concurrency,
                    threads,
                    rows,
                    headers,
                    hits,
                )
        # Shadow scoring, paired: rounds without and with a challenger alternate (without, with, with, without,
        # ...), so that the machine's drift over the run falls on both; the cost is the median of the pairs' ratios.
        shadow_before = shadow_counts(base, headers, database_url)
        paired: dict[bool, list[tuple[Result, float]]] = {False: [], True: []}
        order = [False, True, True, False] * (2 * ((args.rounds + 1) // 2))  # this machine's rounds are noisy
        for challenged in order:
            if challenged:
                httpx.put(f"{base}/api/models/eclo/aliases/challenger", json={"version": challenger},
                          headers=headers, timeout=10).raise_for_status()  # fmt: skip
            else:
                httpx.delete(f"{base}/api/models/eclo/aliases/challenger", headers=headers, timeout=10)
            time.sleep(2.5)  # MODEL_RELOAD_SECONDS=1: the API follows the alias
            paired[challenged].append(run_round(predict_url, args.seconds, 32, 2, rows, headers, hits))
        httpx.delete(f"{base}/api/models/eclo/aliases/challenger", headers=headers, timeout=10)
        time.sleep(3)  # the last sends reach the workers and are recorded
        shadow_after = shadow_counts(base, headers, database_url)
        results["no shadow", 32, 2] = summarize("`POST /api/predict/eclo`, no challenger (paired rounds)", 32, 2,
                                                paired[False], True)  # fmt: skip
        results["shadow", 32, 2] = summarize("`POST /api/predict/eclo`, a challenger scored in the shadow", 32, 2,
                                             paired[True], True)  # fmt: skip
        pair_ratios = [w[0].rate / wo[0].rate for w, wo in zip(paired[True], paired[False], strict=True)]
        shadow_cost = 1 - statistics.median(pair_ratios)
        scored = {k: shadow_after.get(k, 0.0) - shadow_before.get(k, 0.0) for k in ("scored", "skipped")}
        shadow_line = (f"requests/s with a challenger over those without: {1 - shadow_cost:.3f}, the median of "
                       f"{len(pair_ratios)} paired rounds' ratios ({', '.join(f'{r:.3f}' for r in pair_ratios)}); "
                       f"SHADOW_SAMPLE_RATE "
                       f"{Settings(_env_file=None).shadow_sample_rate:g} (the default): shadow scores "
                       f"{scored['scored']:,.0f} recorded by the workers, "
                       f"{scored['skipped']:,.0f} skipped")  # fmt: skip
        print(shadow_line)
        ratios = []
        for concurrency in (1, 32):
            ratio = results["live", concurrency]["rate"] / results["bare", concurrency]["rate"]
            print(f"constant endpoint / bare FastAPI at c={concurrency}: {ratio:.2f}")
            ratios.append(f"{ratio:.2f}× at c={concurrency}")
        assert wait_until(lambda: _ok(f"{base}/health"), timeout=30)
        timings = asyncio.run(_batches(base, rows.take(args.batches * 100), args.batches, headers))
        print(f"batch of 100, submit to result: p50 {statistics.median(timings) * 1e3:.1f} ms, "
              f"max {max(timings) * 1e3:.1f} ms over {len(timings)} batches")  # fmt: skip
    finally:
        group.stop_all()
    table = "\n".join(summary["row"] for summary in results.values())
    cache = (
        "Every prediction's row is sent once before its measurement (warm cache)"
        if args.warm
        else "Every prediction request carries a row sent nowhere else in the run (cold cache)"
    )
    batches = f"p50 {statistics.median(timings) * 1e3:.1f} ms, max {max(timings) * 1e3:.1f} ms"
    write_section(
        "bench_http",
        f"""HTTP, `make bench-http` (`bench/bench_http.py`). A real uvicorn process (httptools, uvloop) with the
defaults on (API keys, records in a SQLite file, metrics, the in-process ECLO cache) and a real Celery worker
(2 processes). Baseline in the same run: a bare FastAPI app with one constant route, in its own uvicorn process.
Load: wrk on the same machine, {args.seconds:.0f} s per round, medians of {args.rounds} rounds. {cache}; the
cache hits are read from `/metrics` around each measurement. Batches: 100 rows each, submitted one after
another and polled every 5 ms. {run_line()}

{TABLE_HEAD}
{table}
| batch of 100 rows, submit to result | {len(timings)} batches | | {batches} | | |

`GET /health/live` (a constant written straight to the response) against the bare FastAPI route:
{", ".join(ratios)}.

Shadow scoring (a challenger set: the default model less its last tree; the API queues each answered row and
sends them in batches to the workers, which score and record them), c=32 with wrk -t2, rounds with and without
it alternating: {shadow_line}.
""",
    )


if __name__ == "__main__":
    main()
