"""With keys on, a request that may carry a body is answered 401 before any of its body is read: a key-less client
announcing 8 MB gets its answer while it has sent only the headers (a real uvicorn)."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

import pytest

from tests.fixtures.auth import Secured

pytestmark = pytest.mark.stack

ANNOUNCED = 8 * 1024 * 1024


def _headers_only(url: str, method: str, path: str, key: str | None) -> tuple[bytes, float]:
    """Sends only the request head announcing an 8 MB body; the answer that comes without the body, and how long it
    took."""
    parts = urlsplit(url)
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    head = (f"{method} {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {ANNOUNCED}\r\n{auth}\r\n")  # fmt: skip
    started = time.perf_counter()
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as connection:
        connection.sendall(head.encode())
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = connection.recv(65536)
            if not chunk:
                break
            answer += chunk
    return answer, time.perf_counter() - started


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/api/predict/eclo"), ("POST", "/api/traffic/readings"), ("PUT", "/api/traffic/sensors"),
     ("POST", "/api/predict/eclo/batch"), ("POST", "/api/assistant/conversations")],
)  # fmt: skip
def test_a_keyless_body_is_refused_before_it_is_read(secured: Secured, method: str, path: str) -> None:
    for key in (None, "tpk_0123456789ab_" + "x" * 43):
        answer, seconds = _headers_only(secured.url, method, path, key)
        assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
        assert b"www-authenticate: Bearer" in answer and seconds < 2


def test_a_valid_key_still_sends_its_body(secured: Secured) -> None:
    with secured.client(secured.keys["predictor"]) as client:
        assert client.post("/api/predict/eclo", json={"weather": "?"}).status_code == 422
        assert client.post("/api/predict/eclo/batch", json={"items": []}).status_code == 422
    with secured.client(secured.keys["reader"]) as client:  # a key, but the wrong scope: the route says so
        assert client.post("/api/traffic/readings", json={"readings": []}).status_code == 403
