"""Single predictions while a file is uploaded beside them: does an upload slow everyone else's answers?

One real uvicorn API (default settings: API keys on, records in a SQLite file, metrics, cache); wrk -t1 at c=1
posts distinct ECLO rows to `POST /api/predict/eclo` (no row twice, so no cache answers; the hits are read from
/metrics and printed) for 5 s, alone, then with a 100,000-row Dacon file (21 MB) uploaded by httpx half a
second in, its rounds alternating; medians of 3 rounds. The baseline is the same load alone, in the same run.

Usage: python bench/bench_upload_beside.py [--rounds 3] [--rows 100000]
Needs wrk (Debian package `wrk`).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_http import ROOT, bench_env, cache_hits, distinct_rows, make_key, run_wrk, start_server  # noqa: E402
from results import run_line, write_section  # noqa: E402

from backend.dev.processes import ProcessGroup, free_port  # noqa: E402
from backend.ml.eclo.datagen import write_dacon_csv  # noqa: E402

SECONDS = 5
ROWS_PER_ROUND = 15_000


def upload(url: str, headers: dict[str, str], path: Path, answers: list[tuple[int, float]]) -> None:
    started = time.perf_counter()
    with httpx.Client(base_url=url, headers=headers, timeout=600) as client, path.open("rb") as handle:
        response = client.post("/api/datasets", files={"file": (path.name, handle, "text/csv")})
    answers.append((response.status_code, time.perf_counter() - started))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=100_000, help="rows of the uploaded file")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed (Debian package `wrk`)")
    folder = Path(tempfile.mkdtemp(prefix="bench-upload-"))
    path = write_dacon_csv(folder / "accidents.csv", args.rows, seed=2026)
    database_url = f"sqlite:///{folder / 'bench.db'}"
    key = make_key(database_url)
    headers = {"Authorization": f"Bearer {key}"}
    rows = distinct_rows(ROWS_PER_ROUND * args.rounds * 2)
    env = bench_env(DATABASE_URL=database_url, DATA_DIR=str(folder / "data"), MODEL_DIR=str(ROOT / "model"),
                    AUTH_ENABLED="true")  # fmt: skip
    group = ProcessGroup(folder, env)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    start_server(group, "api", [sys.executable, "-m", "backend.api.server", "--port", str(port),
                                "--log-level", "warning"], f"{url}/health/live")  # fmt: skip
    print(f"# bench_upload_beside: wrk -t1 c=1, {SECONDS} s per round, {args.rounds} rounds; upload of "
          f"{path.stat().st_size / 1e6:.1f} MB ({args.rows:,} rows) by httpx; logs in {folder}")  # fmt: skip
    results: dict[str, list] = {"alone": [], "beside an upload": []}
    uploads: list[tuple[int, float]] = []
    hits_before = cache_hits(url, headers)
    try:
        for round_number in range(args.rounds):
            for case in results:
                bodies, rows = rows[:ROWS_PER_ROUND], rows[ROWS_PER_ROUND:]
                uploader = None
                if case != "alone":
                    uploader = threading.Thread(target=upload, args=(url, headers, path, uploads))
                    uploader.start()
                    time.sleep(0.5)
                result = run_wrk(f"{url}/api/predict/eclo", 1, SECONDS, bodies, threads=1, headers=headers)
                if uploader is not None:
                    uploader.join()
                results[case].append(result)
                print(f"round {round_number + 1} {case:<17}: {result.rate:,.0f} req/s, p50 {result.p50_ms:.2f} ms, "
                      f"p99 {result.p99_ms:.2f} ms, {result.errors} errors", flush=True)  # fmt: skip
        hits = cache_hits(url, headers) - hits_before
    finally:
        group.stop_all()
    table = ["| single predictions, c=1 | req/s: median (rounds) | p50 / p99 (medians) |", "|---|---|---|"]
    print(table[0])
    print(table[1])
    for case, runs in results.items():
        rates = [r.rate for r in runs]
        p50, p99 = statistics.median(r.p50_ms for r in runs), statistics.median(r.p99_ms for r in runs)
        rounds = ", ".join(f"{r:,.0f}" for r in rates)
        figures = f"{statistics.median(rates):,.0f} ({rounds}) | {p50:.2f} / {p99:.2f} ms"
        print(f"| {case} | {figures} |")
        table.append(f"| {case} (the baseline) | {figures} |" if case == "alone" else f"| {case} | {figures} |")
    seconds = [s for _, s in uploads]
    print(f"uploads: {[status for status, _ in uploads]}, {statistics.median(seconds):.2f} s median "
          f"({', '.join(f'{s:.2f}' for s in seconds)}); cache hits {hits:.0f}")  # fmt: skip
    rows_text = "\n".join(table)
    statuses = ", ".join(sorted({str(status) for status, _ in uploads}))
    upload_rounds = ", ".join(f"{s:.1f}" for s in seconds)
    write_section(
        "bench_upload_beside",
        f"""Single predictions beside an upload, `make bench-upload` (`bench/bench_upload_beside.py`). One real uvicorn
API (default settings: API keys, records in a SQLite file, metrics, cache); wrk -t1 at c=1 on the same machine
posts distinct ECLO rows to `POST /api/predict/eclo` for {SECONDS} s (cold cache: {hits:.0f} hits, read from
`/metrics`), alone (the baseline) and with a {args.rows:,}-row, {path.stat().st_size / 1e6:.1f} MB Dacon file
uploaded by httpx half a second in; the two cases alternate, medians of {args.rounds} rounds. {run_line()}

{rows_text}

The uploads answered {statuses} in {statistics.median(seconds):.1f} s (median; rounds {upload_rounds} s).
""",
    )


if __name__ == "__main__":
    main()
