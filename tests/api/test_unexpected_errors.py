"""An unexpected error is a 500 in the service's envelope that keeps the client's keep-alive connection: served by
the API's own server (uvicorn with backend.api.server's protocol) in this process, the app with two routes added."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from starlette.requests import Request

from backend.api.server import GuardedHttpTools, ServerLimits
from backend.core.config import Settings
from backend.dev.processes import free_port
from backend.main import create_app


@pytest.fixture
def served(app_settings: Settings) -> Iterator[str]:
    app = create_app(app_settings)

    @app.get("/test/port")
    def client_port(request: Request) -> int:
        return request.client.port if request.client else -1

    @app.get("/test/boom")
    def boom() -> None:
        raise RuntimeError("a bug the client did not cause")

    GuardedHttpTools.limits = ServerLimits.from_settings(app_settings)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, http=GuardedHttpTools,  # type: ignore[arg-type]
                                           log_level="warning", lifespan="on"))  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def test_a_500_keeps_the_connection_and_says_nothing_internal(served: str, caplog: pytest.LogCaptureFixture) -> None:
    with httpx.Client(base_url=served, timeout=10) as client:
        before = client.get("/test/port").json()
        failed = client.get("/test/boom")
        after = client.get("/test/port").json()
    assert failed.status_code == 500
    assert failed.json()["error"] == {
        "code": "internal_error",
        "message": "internal error; it has been logged",
        "details": [],
    }
    assert "a bug" not in failed.text and failed.headers["x-request-id"]
    assert failed.headers.get("connection") != "close"
    assert before == after  # the same connection before and after the 500
    assert any("unhandled error" in r.getMessage() and r.exc_info for r in caplog.records)
    (logged,) = [r for r in caplog.records if getattr(r, "status", None) == 500]  # the access log's line
    assert 0 < logged.duration_ms < 10_000  # the request's own duration (it once took the clock's whole reading)
