"""The API's server against hostile clients: 1,000 slowloris connections (a header byte a second each) and 8
connections each sending a 128 MB header, with `GET /health/live` probed beside them.

`python bench/bench_hostile.py` (no make target). Two servers of the same app in the same run, each a real process
with default settings and AUTH_ENABLED=false, a SQLite file: the API's own server (`python -m backend.api.server`,
SERVER_HEAD_TIMEOUT_SECONDS 10, SERVER_HEAD_MAX_BYTES 64 KiB) and, as the baseline, plain uvicorn
(`python -m uvicorn backend.main:app`). Load client: asyncio sockets in this process (the attackers) and, in a
process of its own (so that opening 1,000 sockets here does not delay its clock), one httpx client sending a probe
every 50 ms, sequentially, on one kept-alive connection. Medians of `--rounds` rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event as EventType
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backend.db.migrate import upgrade  # noqa: E402
from backend.dev.processes import ProcessGroup, free_port, wait_until  # noqa: E402
from bench.bench_http import bench_env  # noqa: E402
from bench.results import run_line, write_section  # noqa: E402

SERVERS = {
    "backend.api.server": ["-m", "backend.api.server", "--log-level", "warning"],
    "plain uvicorn (baseline)": ["-m", "uvicorn", "backend.main:app", "--log-level", "warning"],
}


async def _slow_head(port: int, seconds: float) -> float | None:
    """A header byte a second until the server closes (its seconds) or `seconds` pass (None: still open)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    writer.write(b"GET /health/live HTTP/1.1\r\nHost: bench\r\n")
    try:
        while time.monotonic() - started < seconds:
            writer.write(b"X")
            await writer.drain()
            try:
                if await asyncio.wait_for(reader.read(4096), timeout=1.0) or reader.at_eof():
                    return time.monotonic() - started
            except TimeoutError:
                continue
    except (ConnectionResetError, BrokenPipeError):
        return time.monotonic() - started
    finally:
        writer.close()
    return None


def _probe(url: str, stop: EventType, out: Connection) -> None:
    """In its own process: a probe every 50 ms until `stop`, then the latencies sent back."""
    latencies = []
    with httpx.Client(timeout=10) as client:
        while not stop.is_set():
            started = time.perf_counter()
            response = client.get(url)
            latencies.append(time.perf_counter() - started)
            assert response.status_code == 200
            time.sleep(0.05)
    out.send(latencies)


class Prober:
    """A probing process, started on entry; `latencies` once it has stopped."""

    def __init__(self, url: str) -> None:
        self.stop = multiprocessing.Event()
        self.receive, self.send = multiprocessing.Pipe(duplex=False)
        self.process = multiprocessing.Process(target=_probe, args=(url, self.stop, self.send))
        self.latencies: list[float] = []

    def __enter__(self) -> Prober:
        self.process.start()
        self.send.close()  # the child's copy only: a child that dies then ends the pipe, not this wait
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        try:
            self.latencies = self.receive.recv()
        except EOFError as exc:
            raise RuntimeError(f"the prober died (exit code {self.process.exitcode})") from exc
        finally:
            self.process.join()


def _round(port: int, connections: int, seconds: float) -> tuple[list[float], list[float | None], list[float]]:
    url = f"http://127.0.0.1:{port}/health/live"
    with Prober(url) as quiet:
        time.sleep(3)
    with Prober(url) as loud:
        time.sleep(0.5)  # the probe's connection is up before the attack starts
        slow = asyncio.run(_attack(port, connections, seconds))
    return quiet.latencies, slow, loud.latencies


async def _attack(port: int, connections: int, seconds: float) -> list[float | None]:
    return list(await asyncio.gather(*[_slow_head(port, seconds) for _ in range(connections)]))


def _rss_mb(pid: int) -> float:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]) / 1024


async def _big_header(port: int, most: int) -> int:
    """Sends one header of up to `most` bytes; how many bytes went before the server stopped taking them."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /health/live HTTP/1.1\r\nHost: bench\r\nX-Big: ")
    sent = 0
    piece = b"a" * 65536
    try:
        while sent < most:
            writer.write(piece)
            await asyncio.wait_for(writer.drain(), timeout=5)
            sent += len(piece)
    except (ConnectionResetError, BrokenPipeError, TimeoutError):
        pass
    writer.close()
    return sent


def _ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--wait", type=float, default=15.0, help="how long a slow connection is kept trying")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-hostile-"))
    database_url = f"sqlite:///{folder / 'bench.db'}"
    upgrade(database_url)
    env = bench_env(DATABASE_URL=database_url, DATA_DIR=str(folder / "data"), MODEL_DIR=str(ROOT / "model"))
    table = ["| server | probe p50 / p99 / max, quiet | probe p50 / p99 / max, under 1,000 slow heads | slow heads "
             "closed (by when, max) | 8 × 128 MB headers: bytes taken each, RSS growth |",
             "|---|---|---|---|---|"]  # fmt: skip
    for name, arguments in SERVERS.items():
        group = ProcessGroup(folder / name.split()[0], env)
        try:
            port = free_port()
            process = group.spawn("api", [sys.executable, *arguments, "--port", str(port)])
            assert wait_until(lambda port=port: _live(port), timeout=60), f"{name} did not start"
            quiet, loud, closed, closed_by = [], [], [], []
            for _ in range(args.rounds):
                baseline, slow, probes = _round(port, args.connections, args.wait)
                quiet.append(baseline)
                loud.append(probes)
                finished = [s for s in slow if s is not None]
                closed.append(len(finished))
                closed_by.append(max(finished) if finished else float("nan"))
            before = _rss_mb(process.pid)
            taken = asyncio.run(_gather_big(port))
            growth = _rss_mb(process.pid) - before
            q = [statistics.median(_ms(r, p) for r in quiet) for p in (0.5, 0.99, 1.0)]
            u = [statistics.median(_ms(r, p) for r in loud) for p in (0.5, 0.99, 1.0)]
            closed_text = f"{statistics.median(closed):,.0f} of {args.connections:,}"
            row = (
                f"| {name} | {q[0]:.1f} / {q[1]:.1f} / {q[2]:.1f} ms | {u[0]:.1f} / {u[1]:.1f} / {u[2]:.1f} ms | "
                f"{closed_text} (max {statistics.median(closed_by):.1f} s; kept trying {args.wait:.0f} s) | "
                f"{max(taken) / 1e6:,.1f} MB at most, {growth:+,.0f} MB |"
            )
            table.append(row)
            print(row, flush=True)
        finally:
            group.stop_all()
    write_section(
        "bench_hostile",
        f"""Hostile clients: {(__doc__ or "").split(chr(10), 2)[2].strip()} {run_line()}

{chr(10).join(table)}
""",
    )
    return 0


async def _gather_big(port: int) -> list[int]:
    return list(await asyncio.gather(*[_big_header(port, 128 * 1024 * 1024) for _ in range(8)]))


def _live(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


if __name__ == "__main__":
    raise SystemExit(main())
