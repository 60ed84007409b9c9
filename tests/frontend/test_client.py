"""The dashboard's client against a local flaky HTTP server that answers from a script."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from backend.dev.processes import free_port
from frontend.client import ApiClient, ApiError, ApiUnavailable

OK = (200, {}, {"models": [{"name": "eclo"}]})


class FlakyServer:
    def __init__(self) -> None:
        self.script: list[tuple[int, dict, dict]] = []
        self.hits: list[float] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                owner.hits.append(time.monotonic())
                status, headers, body = owner.script.pop(0) if owner.script else OK
                payload = json.dumps(body).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def _error(status: int, code: str, message: str, headers: dict | None = None) -> tuple[int, dict, dict]:
    return status, headers or {}, {"error": {"code": code, "message": message, "details": []}}


@pytest.fixture
def flaky() -> Iterator[FlakyServer]:
    server = FlakyServer()
    yield server
    server.server.shutdown()


def _client(url: str) -> ApiClient:
    return ApiClient(url, timeout=2, backoff_seconds=0.05)


def test_two_failures_then_success(flaky: FlakyServer) -> None:
    flaky.script = [_error(503, "dependency_unavailable", "redis is down"), _error(502, "x", "bad gateway")]
    assert _client(flaky.url).models() == [{"name": "eclo"}]
    assert len(flaky.hits) == 3


def test_three_failures_give_a_clear_error(flaky: FlakyServer) -> None:
    flaky.script = [_error(503, "dependency_unavailable", "redis is unavailable: down")] * 3
    with pytest.raises(ApiUnavailable) as caught:
        _client(flaky.url).models()
    assert caught.value.message == "redis is unavailable: down (after 3 attempts)"
    assert caught.value.status == 503 and len(flaky.hits) == 3


def test_a_422_is_not_retried(flaky: FlakyServer) -> None:
    flaky.script = [_error(422, "validation_error", "invalid input in 1 field(s): weather")]
    with pytest.raises(ApiError) as caught:
        _client(flaky.url).models()
    assert not isinstance(caught.value, ApiUnavailable)
    assert caught.value.message == "invalid input in 1 field(s): weather" and caught.value.code == "validation_error"
    assert len(flaky.hits) == 1


def test_retry_after_is_honoured(flaky: FlakyServer) -> None:
    flaky.script = [_error(429, "queue_full", "queue full", {"Retry-After": "1"})]
    assert _client(flaky.url).models() == [{"name": "eclo"}]
    assert len(flaky.hits) == 2 and flaky.hits[1] - flaky.hits[0] >= 0.95


def test_unreachable_api_is_reported_after_three_attempts() -> None:
    with pytest.raises(ApiUnavailable, match="cannot reach the API at http://127.0.0.1:"):
        _client(f"http://127.0.0.1:{free_port()}").models()


def test_a_503_health_report_is_an_answer(flaky: FlakyServer) -> None:
    flaky.script = [(503, {}, {"status": "degraded", "components": {"redis": {"status": "down"}}})]
    assert _client(flaky.url).health()["status"] == "degraded"
    assert len(flaky.hits) == 1
