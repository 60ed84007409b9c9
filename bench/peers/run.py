"""This API against MLServer serving the same model, each server under load alone on this machine, the same rows.

MLServer 1.7 (one process: parallel_workers 0, `httptools` installed) answers a custom JSON route that calls the
same `EcloModel.predict_one` (with its explanation) as this API (bench/peers/mlserver_runtime.py). This API runs
with its defaults: API keys, records in a SQLite file, metrics, the in-process ECLO cache. Load: wrk -t1 at 1 and
32 connections, every request a distinct row, the same rows for every server; medians of the rounds. The servers
are up throughout and loaded one at a time, their rounds alternating: this VM's speed drifts by a third within
minutes, and back-to-back blocks of rounds measured the drift as much as the servers. A third server is the
floor: uvicorn and a bare ASGI callable doing nothing but `predict_one` (bench/peers/floor_app.py).

Usage: python bench/peers/run.py [--seconds 5] [--rounds 3] [--peers-python PATH]
MLServer lives in a virtualenv of its own (its FastAPI pin differs from ours): bench/peers/.venv, made on the
first run from the package registry, unless --peers-python names one.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

from bench_http import (  # noqa: E402
    ROWS_PER_SECOND,
    TABLE_HEAD,
    Rows,
    bench_env,
    cache_hits,
    distinct_rows,
    make_key,
    run_round,
    start_server,
    summarize,
)
from results import run_line, write_section  # noqa: E402

from backend.dev.processes import ProcessGroup, free_port  # noqa: E402
from backend.schemas.eclo import CLASSIC_EXAMPLE  # noqa: E402

PEERS_VENV = ROOT / "bench" / "peers" / ".venv"
PEER_PACKAGES = ["mlserver==1.7.1", "httptools==0.9.0", "lightgbm==4.7.0", "holidays==0.108", "numpy==2.4.6",
                 "pandas==3.1.1", "orjson==3.13.0"]  # fmt: skip


def peers_python(given: str | None) -> Path:
    if given:
        return Path(given)
    python = PEERS_VENV / "bin" / "python"
    if not python.exists():
        print(f"making {PEERS_VENV} (MLServer and the model's runtime packages) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(PEERS_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *PEER_PACKAGES], check=True)
    return python


def start_mlserver(python: Path, folder: Path) -> tuple[ProcessGroup, str]:
    http, grpc, metrics = free_port(), free_port(), free_port()
    (folder / "settings.json").write_text(json.dumps({
        "http_port": http, "grpc_port": grpc, "metrics_port": metrics, "parallel_workers": 0, "debug": False,
    }))  # fmt: skip
    (folder / "model-settings.json").write_text(json.dumps({
        "name": "eclo", "implementation": "mlserver_runtime.EcloRuntime",
        "parameters": {"uri": str(ROOT / "model" / "eclo")},
    }))  # fmt: skip
    group = ProcessGroup(folder, {"PATH": f"{python.parent}:/usr/bin:/bin",
                                  "PYTHONPATH": f"{ROOT / 'bench' / 'peers'}:{ROOT}"})  # fmt: skip
    url = f"http://127.0.0.1:{http}"
    start_server(group, "mlserver", [str(python.parent / "mlserver"), "start", str(folder)], f"{url}/v2/health/ready")
    answer = httpx.post(f"{url}/eclo", json=CLASSIC_EXAMPLE, timeout=10).json()
    assert answer["eclo"] > 0 and answer["explanation"], answer
    return group, f"{url}/eclo"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--peers-python", help="the python of a virtualenv holding mlserver and httptools")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed (Debian package `wrk`)")
    python = peers_python(args.peers_python)
    rows = distinct_rows(ROWS_PER_SECOND * round(args.seconds) * args.rounds * 2)
    folder = Path(tempfile.mkdtemp(prefix="peers-"))
    print(f"# peers: one process each, all up, under load one at a time, their rounds alternating (this VM's "
          f"speed drifts); wrk -t1 on the same machine; {args.seconds:.0f} s per round, medians of {args.rounds} "
          f"rounds; every request a distinct row, the same rows for each server")  # fmt: skip

    database_url = f"sqlite:///{folder / 'api.db'}"
    key = make_key(database_url)
    headers = {"Authorization": f"Bearer {key}"}
    env = bench_env(MODEL_DIR=str(ROOT / "model"), DATABASE_URL=database_url, DATA_DIR=str(folder / "data"),
                    AUTH_ENABLED="true")  # fmt: skip
    port = free_port()
    api = ProcessGroup(folder, env)
    floor_port = free_port()
    floor = ProcessGroup(folder, {**env, "PYTHONPATH": f"{ROOT / 'bench' / 'peers'}:{ROOT}"})
    mlserver: ProcessGroup | None = None
    try:
        start_server(api, "api", [sys.executable, "-m", "backend.api.server", "--port", str(port)],
                     f"http://127.0.0.1:{port}/health/live")  # fmt: skip
        start_server(floor, "floor", [sys.executable, "-m", "uvicorn", "floor_app:app", "--port", str(floor_port),
                                      "--no-access-log"], f"http://127.0.0.1:{floor_port}/ping")  # fmt: skip
        mlserver, mlserver_url = start_mlserver(python, folder)
        servers = {
            "api": ("this API, `POST /api/predict/eclo`", f"http://127.0.0.1:{port}/api/predict/eclo", headers,
                    lambda: cache_hits(f"http://127.0.0.1:{port}", headers)),
            "mlserver": ("MLServer 1.7 + httptools, custom JSON route", mlserver_url, None, None),
            "floor": ("floor: uvicorn + bare ASGI `predict_one`", f"http://127.0.0.1:{floor_port}/eclo", None, None),
        }  # fmt: skip
        served = {name: Rows(rows) for name in servers}
        rounds_run: dict[tuple[str, int], list] = {(name, c): [] for name in servers for c in (1, 32)}
        for concurrency in (1, 32):
            for _ in range(args.rounds):
                for name, (_, url, server_headers, hits) in servers.items():
                    rounds_run[name, concurrency].append(
                        run_round(url, args.seconds, concurrency, 1, served[name], server_headers, hits)
                    )
    finally:
        api.stop_all()
        floor.stop_all()
        if mlserver is not None:
            mlserver.stop_all()

    print(TABLE_HEAD)
    results = {
        (name, c): summarize(servers[name][0], c, 1, rounds_run[name, c], servers[name][3] is not None)
        for c in (1, 32)
        for name in servers
    }
    ratios = []
    for concurrency in (1, 32):
        for name, label in (("api", "this API"), ("floor", "the floor")):
            ratio = results[name, concurrency]["rate"] / results["mlserver", concurrency]["rate"]
            paired = [a / m for a, m in zip(results[name, concurrency]["rounds"],
                                            results["mlserver", concurrency]["rounds"], strict=True)]  # fmt: skip
            print(f"{label} / MLServer at c={concurrency}: {ratio:.2f}x (round by round: "
                  f"{', '.join(f'{r:.2f}' for r in paired)})")  # fmt: skip
            by_round = ", ".join(f"{r:.2f}" for r in paired)
            ratios.append(f"| {label} / MLServer | c={concurrency} | {ratio:.2f}× ({by_round}) |")
    print(f"this API's p99 at c=1: {results['api', 1]['p99']:.2f} ms")
    table = "\n".join(summary["row"] for summary in results.values())
    ratio_table = "\n".join(ratios)
    write_section(
        "peers",
        f"""This API against MLServer, `make bench-peers` (`bench/peers/run.py`). Three servers, one process each,
serving the same `EcloModel.predict_one` with its explanation: this API with its defaults on (API keys, records in
a SQLite file, metrics, the in-process ECLO cache); MLServer 1.7 with `httptools`, a custom JSON route
(`bench/peers/mlserver_runtime.py`, `parallel_workers: 0`), the baseline; and the floor, uvicorn with a bare ASGI
callable doing nothing but `predict_one` (`bench/peers/floor_app.py`). All three are up throughout and loaded one
at a time, their rounds alternating. Load: wrk -t1 on the same machine at 1 and 32 connections,
{args.seconds:.0f} s per round, medians of {args.rounds} rounds; every request a distinct row, the same rows for
each server (cold cache). {run_line()}

{TABLE_HEAD}
{table}

| ratio | load | median (round by round) |
|---|---|---|
{ratio_table}
""",
    )


if __name__ == "__main__":
    main()
