"""The dashboard's Host allow-list (frontend/hosts.py), against DNS rebinding: the rule, and a real Streamlit
process started as `make run` and compose start it (frontend/dashboard.py)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from backend.dev.processes import PROJECT_ROOT, free_port, wait_until
from frontend.hosts import host_allowed, hostname

DEFAULT = ["127.0.0.1", "localhost"]


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("127.0.0.1:8501", True),
        ("127.0.0.1", True),
        ("LocalHost:8501", True),
        ("localhost.:8501", True),
        ("evil.example", False),
        ("evil.example:8501", False),
        ("localhost.evil.example", False),
        ("127.0.0.1.evil.example", False),
        ("evil.example@127.0.0.1", False),
        ("127.0.0.1/evil", False),
        ("127.0.0.1:99999", False),
        ("127.0.0.1:port", False),
        ("", False),
        (None, False),
    ],
)
def test_only_the_allowed_names_pass(host: str | None, allowed: bool) -> None:
    assert host_allowed(host, DEFAULT) is allowed


def test_patterns() -> None:
    assert hostname("[::1]:8501") == "::1" and host_allowed("[::1]:8501", ["::1"]) and host_allowed("[::1]", ["[::1]"])
    subdomains = ["*.example.org"]
    assert host_allowed("dash.example.org:443", subdomains) and not host_allowed("example.org", subdomains)
    assert not host_allowed("badexample.org", subdomains)
    assert host_allowed("anything.example", ["*"]) and not host_allowed("anything.example", [])


def _handshake(port: int, host: str) -> bytes:
    """The status line the server answers a WebSocket upgrade of /_stcore/stream with."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(
            f"GET /_stcore/stream HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Protocol: streamlit\r\n\r\n".encode()
        )
        return conn.recv(4096).split(b"\r\n", 1)[0]


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """`streamlit run frontend/dashboard.py` on a free port, with the default allow-list (its API is nowhere: these
    requests never reach a page script)."""
    port = free_port()
    log = tmp_path_factory.mktemp("dashboard") / "streamlit.log"
    env = {k: v for k, v in os.environ.items() if k != "DASHBOARD_ALLOWED_HOSTS"}
    env.update(API_URL=f"http://127.0.0.1:{free_port()}", PYTHONPATH=str(PROJECT_ROOT))
    with Path(log).open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "frontend/dashboard.py", f"--server.port={port}",
             "--server.address=127.0.0.1", "--server.headless=true", "--browser.gatherUsageStats=false",
             "--server.enableStaticServing=true"],
            cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        assert wait_until(lambda: _health(port), timeout=60), log.read_text()
        yield port
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(15)


def _health(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/_stcore/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.stack
@pytest.mark.parametrize("path", ["/", "/_stcore/health", "/app/static/map/leaflet.js"])
def test_a_foreign_host_is_refused_on_http(dashboard: int, path: str) -> None:
    url = f"http://127.0.0.1:{dashboard}{path}"
    for host in ("evil.example", f"evil.example:{dashboard}"):
        assert httpx.get(url, headers={"Host": host}, timeout=10).status_code == 403, host
    for host in (f"127.0.0.1:{dashboard}", f"localhost:{dashboard}"):
        assert httpx.get(url, headers={"Host": host}, timeout=10).status_code == 200, host
    assert httpx.get(f"http://127.0.0.1:{dashboard}/", timeout=10).status_code == 200


@pytest.mark.stack
def test_a_foreign_host_gets_no_websocket(dashboard: int) -> None:
    assert _handshake(dashboard, "evil.example") == b"HTTP/1.1 403 Forbidden"
    assert _handshake(dashboard, f"evil.example:{dashboard}") == b"HTTP/1.1 403 Forbidden"
    assert _handshake(dashboard, f"127.0.0.1:{dashboard}") == b"HTTP/1.1 101 Switching Protocols"
    assert _handshake(dashboard, f"localhost:{dashboard}") == b"HTTP/1.1 101 Switching Protocols"
