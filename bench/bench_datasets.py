"""A whole file scored across the workers: upload, then jobs on 1 and on 2 worker processes.

A generated Dacon-layout file of N accidents (default 100,000; distinct rows, ~2% of them invalid) is uploaded
once to a real uvicorn API (the upload's time includes checking every row), then scored by a job of 1,000-row
chunks with one Celery worker process, and again with two (`celery worker -c 2`, prefork). Each job is timed
from POST .../predict until the poll says success (the load client is httpx, polling every 50 ms); rounds
per worker count give the median. There is no cache on this path: every round scores every row.

Baseline in the same run: the same valid rows through `predict_many` in this process, one call of 1,000 rows
after another (the model's own speed, no queue, files or Redis). Memory: the peak RSS of the API and of each
worker process, sampled every 100 ms while the job runs.

Usage: python bench/bench_datasets.py [--rows 100000] [--rounds 3] [--workers 1 2]
Uses Redis database 14 of REDIS_URL's server under its own key prefix and queue, a SQLite file and a data folder
in a temporary directory, and the models under model/.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from functools import partial
from pathlib import Path

import httpx

from backend.db.migrate import upgrade
from backend.dev.processes import ProcessGroup, free_port, stop, wait_until
from backend.ml.eclo.datagen import write_dacon_csv
from backend.ml.eclo.model import EcloModel
from backend.ml.eclo.uploads import check_rows, file_format

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_http import bench_env  # noqa: E402
from results import run_line, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CHUNK = 1000


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


class PeakMemory(threading.Thread):
    """Peak RSS of the API and of every worker process (the prefork parent and its children) until stopped."""

    def __init__(self, api_pid: int, worker_pid: int) -> None:
        super().__init__(daemon=True)
        self.api_pid, self.worker_pid = api_pid, worker_pid
        self.api = self.worker = 0.0
        self.running = True

    def run(self) -> None:
        while self.running:
            self.api = max(self.api, rss_mb(self.api_pid))
            for pid in [self.worker_pid, *children(self.worker_pid)]:
                self.worker = max(self.worker, rss_mb(pid))
            time.sleep(0.1)


def baseline(path: Path, model_dir: Path) -> float:
    """Rows per second of `predict_many` in one process over the file's valid rows, 1,000 at a time."""
    model = EcloModel.load(model_dir)
    with path.open("rb") as handle:
        rows = [c.row for c in check_rows(handle, file_format(handle), model) if c.row is not None]
    gc.freeze()  # the 100,000 rows held here would otherwise be walked by every full collection
    started = time.perf_counter()
    for start in range(0, len(rows), CHUNK):
        model.predict_many(rows[start : start + CHUNK])
    return len(rows) / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="bench-datasets-"))
    path = write_dacon_csv(folder / "accidents.csv", args.rows, seed=2026)
    database_url = f"sqlite:///{folder / 'bench.db'}"
    upgrade(database_url)
    env = bench_env(DATABASE_URL=database_url, DATA_DIR=str(folder / "data"), MODEL_DIR=str(ROOT / "model"))
    name = env["CELERY_QUEUE"]
    group = ProcessGroup(folder, env)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(f"# bench_datasets: {args.rows:,} rows, chunks of {CHUNK}, {args.rounds} rounds per worker count; {machine}")
    baseline_rate = baseline(path, ROOT / "model" / "eclo")
    print(f"baseline predict_many in one process: {baseline_rate:,.0f} rows/s")
    table = [
        "| worker processes | job wall time (median) | rows/s | rounds (s) | peak RSS API | peak RSS worker |",
        "|---|---|---|---|---|---|",
        f"| baseline: `predict_many` in one process | | {baseline_rate:,.0f} | | | |",
    ]
    try:
        port = free_port()
        api_process = group.spawn("api", [sys.executable, "-m", "backend.api.server", "--port", str(port),
                                          "--log-level", "warning"])  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        assert wait_until(lambda: _live(url), timeout=60), "API did not start"
        with httpx.Client(base_url=url, timeout=120) as api:
            started = time.perf_counter()
            with path.open("rb") as handle:
                response = api.post("/api/datasets", files={"file": (path.name, handle, "text/csv")})
            upload_seconds = time.perf_counter() - started
            assert response.status_code == 201, response.text
            dataset = response.json()
            print(f"upload and check: {upload_seconds:.2f} s for {dataset['size_bytes'] / 1e6:.1f} MB, "
                  f"{dataset['rows']:,} rows, {dataset['valid_rows']:,} valid ({dataset['rows'] / upload_seconds:,.0f}"
                  " rows/s)")  # fmt: skip
            print(table[0])
            print(table[1])
            for count in args.workers:
                command = [sys.executable, "-m", "celery", "-A", "backend.tasks", "worker", "-P", "prefork", "-c",
                           str(count), "--loglevel", "WARNING", "--without-gossip", "--without-mingle", "-n",
                           f"{name}-{count}@%h"]  # fmt: skip
                worker = group.spawn(f"worker-{count}", command)
                started = partial(_forked, worker.pid, count)
                assert wait_until(started, timeout=60), "worker did not start"
                time.sleep(3)  # children load the model after the fork
                memory = PeakMemory(api_process.pid, worker.pid)
                memory.start()
                walls = [_job(api, dataset["id"]) for _ in range(args.rounds)]
                memory.running = False
                memory.join()
                wall = statistics.median(walls)
                rounds = ", ".join(f"{w:.2f}" for w in walls)
                table.append(f"| {count} | {wall:.2f} s | {dataset['valid_rows'] / wall:,.0f} | {rounds} | "
                             f"{memory.api:.0f} MB | {memory.worker:.0f} MB |")  # fmt: skip
                print(table[-1])
                stop(worker)
            started = time.perf_counter()
            results = api.get(f"/api/datasets/{dataset['id']}/predictions.csv")
            download_seconds = time.perf_counter() - started
            assert results.status_code == 200 and results.content.count(b"\n") == dataset["rows"] + 1
            print(f"results CSV: {download_seconds:.2f} s for {len(results.content) / 1e6:.1f} MB")
            total = upload_seconds + statistics.median(walls) + download_seconds
            print(f"end to end with {args.workers[-1]} worker processes (upload and check, job, CSV): {total:.2f} s")
    finally:
        group.stop_all()
    rows_text = "\n".join(table)
    write_section(
        "bench_datasets",
        f"""A whole file scored across the workers, `make bench-datasets` (`bench/bench_datasets.py`). A generated
Dacon-layout file of {dataset["rows"]:,} distinct rows ({dataset["valid_rows"]:,} valid) is uploaded once to a real
uvicorn API, then scored by jobs of {CHUNK:,}-row chunks on a real prefork Celery worker with
{" and then ".join(map(str, args.workers))} processes; each job timed from `POST .../predict` until the poll
(httpx, every 50 ms) says success, median of {args.rounds} rounds. No cache on this path. Baseline in the same
run: `predict_many` over the same valid rows in one process, {CHUNK:,} at a time. Memory: peak RSS of the API and
of each worker process, sampled every 100 ms. {run_line()}

{rows_text}

Around the job: upload with the row-by-row check {upload_seconds:.2f} s ({dataset["size_bytes"] / 1e6:.1f} MB,
{dataset["rows"] / upload_seconds:,.0f} rows/s); results CSV {download_seconds:.2f} s
({len(results.content) / 1e6:.1f} MB); upload to downloaded results with {args.workers[-1]} worker processes
{total:.2f} s.
""",
    )
    return 0


def _forked(pid: int, count: int) -> bool:
    return len(children(pid)) >= count


def _live(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health/live", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _job(api: httpx.Client, dataset_id: str) -> float:
    started = time.perf_counter()
    response = api.post(f"/api/datasets/{dataset_id}/predict", params={"chunk_rows": CHUNK})
    assert response.status_code == 202, response.text
    while True:
        status = api.get(f"/api/datasets/{dataset_id}/predictions").json()
        if status["status"] == "success":
            return time.perf_counter() - started
        assert status["status"] in ("pending", "processing"), status
        time.sleep(0.05)


if __name__ == "__main__":
    raise SystemExit(main())
