"""The API's server (backend.api.server) against clients that hold connections or memory without finishing a
request: a head too large (431, nothing more buffered), a head too slow (slowloris: 408 and closed), a body
trickled (408); the API keeps answering throughout. Short limits (SERVER_* settings) keep the test fast."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.fixtures.stack import Stack, stack_of_its_own

pytestmark = pytest.mark.drill

HEAD_TIMEOUT = 2.0
SLOW_CONNECTIONS = 1000


@pytest.fixture(scope="module")
def guarded(redis_url: str, small_model_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("server")
    limits = {"SERVER_HEAD_TIMEOUT_SECONDS": str(HEAD_TIMEOUT), "SERVER_BODY_WINDOW_SECONDS": "1",
              "SERVER_BODY_MIN_BYTES_PER_SECOND": "1000", "AUTH_ENABLED": "false"}  # fmt: skip
    with stack_of_its_own(folder, redis_url, small_model_root, **limits) as stack:
        stack.env["API_URL"] = stack.start_api()
        yield stack


def _address(stack: Stack) -> tuple[str, int]:
    parts = urlsplit(stack.env["API_URL"])
    return str(parts.hostname), int(parts.port or 80)


def _rss_mb(stack: Stack) -> float:
    pid = next(p.pid for name, p in stack.processes.items() if name.startswith("api-"))
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]) / 1024


def test_a_head_over_the_limit_is_refused_with_431_and_not_buffered(guarded: Stack) -> None:
    before = _rss_mb(guarded)
    answers = []
    for _ in range(8):
        with socket.create_connection(_address(guarded), timeout=10) as connection:
            connection.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Big: ")
            sent = 0
            try:
                while sent < 128 * 1024 * 1024:
                    connection.sendall(b"a" * 65536)
                    sent += 65536
            except (BrokenPipeError, ConnectionResetError):
                pass
            try:
                answers.append(connection.recv(4096))
            except ConnectionResetError:
                answers.append(b"reset")
        assert sent < 8 * 1024 * 1024  # the server closed long before 128 MB
    assert any(a.startswith(b"HTTP/1.1 431") for a in answers), answers
    assert _rss_mb(guarded) - before < 50
    assert httpx.get(f"{guarded.env['API_URL']}/health/live", timeout=5).status_code == 200


async def _slow_head(address: tuple[str, int], seconds: float) -> tuple[bytes, float]:
    """One header byte a second until the server closes; what it answered and when."""
    reader, writer = await asyncio.open_connection(*address)
    started = time.monotonic()
    writer.write(b"GET /health/live HTTP/1.1\r\nHost: x\r\n")
    answer = b""
    try:
        while time.monotonic() - started < seconds:
            writer.write(b"X")
            await writer.drain()
            try:
                answer = await asyncio.wait_for(reader.read(4096), timeout=1.0)
            except TimeoutError:
                continue
            break
    except (ConnectionResetError, BrokenPipeError):
        pass
    writer.close()
    return answer, time.monotonic() - started


def test_slow_heads_are_closed_within_the_head_timeout_while_the_api_answers(guarded: Stack) -> None:
    address = _address(guarded)
    url = f"{guarded.env['API_URL']}/health/live"

    async def run() -> tuple[list[tuple[bytes, float]], list[float]]:
        slow = [asyncio.create_task(_slow_head(address, HEAD_TIMEOUT * 4)) for _ in range(SLOW_CONNECTIONS)]
        probes: list[float] = []
        async with httpx.AsyncClient(timeout=5) as client:
            while not all(task.done() for task in slow):
                started = time.perf_counter()
                assert (await client.get(url)).status_code == 200
                probes.append(time.perf_counter() - started)
                await asyncio.sleep(0.1)
        return [task.result() for task in slow], probes

    results, probes = asyncio.run(run())
    assert all(answer.startswith(b"HTTP/1.1 408") for answer, _ in results), {a[:40] for a, _ in results}
    assert max(seconds for _, seconds in results) < HEAD_TIMEOUT + 2
    assert probes and max(probes) < 1.0  # the timing target is in bench/bench_hostile.py


def test_a_trickled_body_is_cut_with_408(guarded: Stack) -> None:
    with socket.create_connection(_address(guarded), timeout=10) as connection:
        connection.sendall(b"POST /api/predict/eclo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                           b"Content-Length: 100000\r\n\r\n{")  # fmt: skip
        started = time.monotonic()
        answer = b""
        while time.monotonic() - started < 10 and not answer:
            connection.sendall(b" ")
            connection.settimeout(0.5)
            try:
                answer = connection.recv(4096)
            except TimeoutError:
                continue
    assert answer.startswith(b"HTTP/1.1 408") and time.monotonic() - started < 4


def test_ordinary_requests_keep_their_connection(guarded: Stack) -> None:
    with httpx.Client(base_url=guarded.env["API_URL"], timeout=10) as client:
        for _ in range(20):
            assert client.get("/health/live").status_code == 200
            assert client.post("/api/predict/eclo", json={}).status_code == 422
