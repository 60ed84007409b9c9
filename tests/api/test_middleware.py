"""The request middleware's body limit: a body over REQUEST_MAX_BYTES is refused in the envelope before it is
read whole, announced or streamed; uploads keep their own limit. HotRoutes: a hot route's answer straight from
ASGI, anything else passed on with its body."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.datastructures import State
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import Message, Receive, Scope, Send

from backend.api.middleware import HotRoutes
from backend.core.config import Settings
from backend.main import create_app
from tests.fixtures.datasets import dacon_file, upload

LIMIT = 20_000


@pytest.fixture
def small_limit_client(app_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(app_settings.model_copy(update={"request_max_bytes": LIMIT}))) as client:
        yield client


@pytest.mark.parametrize("path", ["/api/predict/eclo", "/api/predict/eclo/batch", "/api/traffic/readings"])
def test_an_announced_body_over_the_limit_is_refused(small_limit_client: TestClient, path: str) -> None:
    body = json.dumps({"items": ["x" * LIMIT]})
    response = small_limit_client.post(path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 413 and response.headers["x-request-id"]
    error = response.json()["error"]
    assert error["code"] == "too_large" and error["details"] == [{"field": "body"}]
    assert f"at most {LIMIT:,}" in error["message"]


@pytest.mark.parametrize(
    ("path", "opening", "closing"),
    [
        ("/api/predict/eclo/batch", b'{"items": ["', b'"]}'),
        ("/api/predict/eclo", b'{"weather": "', b'"}'),  # a hot route, answered by HotRoutes
    ],
)
def test_a_streamed_body_is_cut_at_the_limit(
    small_limit_client: TestClient, path: str, opening: bytes, closing: bytes
) -> None:
    def body() -> Iterator[bytes]:  # chunked: no Content-Length
        yield opening
        for _ in range(100):
            yield b"x" * 1000
        yield closing

    response = small_limit_client.post(path, content=body(), headers={"content-type": "application/json"})
    assert response.status_code == 413 and f"exceeds {LIMIT:,} bytes" in response.json()["error"]["message"]


@pytest.mark.stack  # an upload is checked in a spawned process of its own
def test_bodies_under_the_limit_and_uploads_pass(
    small_limit_client: TestClient, classic_row: dict, tmp_path: Path
) -> None:
    assert small_limit_client.post("/api/predict/eclo", json=classic_row).status_code == 200
    raw = dacon_file(tmp_path, 300)
    assert len(raw) > LIMIT
    assert upload(small_limit_client, raw).status_code == 201


async def refused(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"refused": repr(exc)}, status_code=422)


class Inner:
    """The app behind HotRoutes: records what it was given and answers 418."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.bodies.append(body)
        await send({"type": "http.response.start", "status": 418, "headers": []})
        await send({"type": "http.response.body", "body": b"inner"})


async def answer(
    state: State,
    model: str,
    authorization: str | None,
    read_body: Callable[[], Awaitable[bytes]],
    request_id: str | None,
) -> bytes:
    if authorization == "Bearer refused-before-the-body":
        raise KeyError("refused")
    body = await read_body()
    if body == b"bad":
        raise KeyError("refused")  # answered by the handler of its base, LookupError
    if body == b"broken":
        raise ZeroDivisionError
    return json.dumps({"model": model, "body": body.decode(), "key": authorization, "request_id": request_id}).encode()


def _call(
    hot: HotRoutes, method: str, path: str, chunks: list[bytes], complete: bool = True, key: bytes = b"Bearer k"
) -> tuple[Scope, list[Message]]:
    """`complete`: False when the client leaves after `chunks`."""
    messages: list[Message] = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1 or not complete}
        for i, chunk in enumerate(chunks)
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    app = type("App", (), {"state": State(), "exception_handlers": {LookupError: refused}})
    scope: dict[str, Any] = {"type": "http", "method": method, "path": path, "app": app,
                             "headers": [(b"authorization", key)], "state": {"request_id": "r-1"}}  # fmt: skip
    asyncio.run(hot(scope, receive, send))
    scope["unread"] = len(messages)
    return scope, sent


def test_hot_routes_answer_with_the_answer_function() -> None:
    inner = Inner()
    scope, sent = _call(HotRoutes(inner, "/hot/", answer), "POST", "/hot/m1", [b'{"a":', b" 1}"])
    assert inner.bodies == []
    assert sent[0]["status"] == 200
    headers = dict(sent[0]["headers"])
    assert headers[b"content-type"] == b"application/json"
    assert int(headers[b"content-length"]) == len(sent[1]["body"])
    assert json.loads(sent[1]["body"]) == {"model": "m1", "body": '{"a": 1}', "key": "Bearer k", "request_id": "r-1"}
    assert scope["route"].path == "/hot/{model}"  # the metrics' route label


def test_hot_routes_answer_errors_by_the_apps_handlers_and_pass_other_requests_on() -> None:
    inner = Inner()
    hot = HotRoutes(inner, "/hot/", answer)
    _, sent = _call(hot, "POST", "/hot/m", [b"ba", b"d"])
    assert sent[0]["status"] == 422 and json.loads(sent[1]["body"]) == {"refused": "KeyError('refused')"}
    with pytest.raises(ZeroDivisionError):  # no handler: raised to Starlette's outermost layer, which answers 500
        _call(hot, "POST", "/hot/m", [b"broken"])
    _, sent = _call(hot, "POST", "/hot/m", [b'{"a":'], complete=False)
    assert sent == []  # the client left: nothing to answer
    scope, sent = _call(hot, "POST", "/hot/m", [b"{", b"}"], key=b"Bearer refused-before-the-body")
    assert sent[0]["status"] == 422 and (b"connection", b"close") in sent[0]["headers"]
    assert sent[1]["more_body"] and not sent[-1]["more_body"] and scope["unread"] == 0  # answered, then drained
    assert inner.bodies == []
    _, sent = _call(hot, "GET", "/hot/m", [b""])
    _, sent_elsewhere = _call(hot, "POST", "/cold", [b"{}"])
    _call(hot, "POST", "/hot/m/batch", [b"[]"])  # a path below a model's: not the single route
    _call(hot, "POST", "/hot/", [b"0"])  # no model named
    assert inner.bodies == [b"", b"{}", b"[]", b"0"]
    assert sent[0]["status"] == sent_elsewhere[0]["status"] == 418


def test_the_fastapi_routes_answer_as_the_hot_path_does(app_settings: Settings, classic_row: dict) -> None:
    """The FastAPI route (what the OpenAPI document describes) and HotRoutes call the same answer function."""
    bodies = [json.dumps(classic_row), json.dumps({**classic_row, "weather": "?"}), "[1]", "{", ""]
    answers = []
    for hot in (True, False):
        app = create_app(app_settings)
        if not hot:
            app.user_middleware = [m for m in app.user_middleware if m.cls is not HotRoutes]
        with TestClient(app) as client:
            answers.append([client.post("/api/predict/eclo", content=body) for body in bodies])
    for hot, plain in zip(*answers, strict=True):
        assert (hot.status_code, hot.json()) == (plain.status_code, plain.json())
        assert hot.headers["content-type"] == plain.headers["content-type"]
    assert [a.status_code for a in answers[0]] == [200, 422, 422, 422, 422]


def test_the_api_bounds_how_long_a_thread_holds_the_gil(app_settings: Settings) -> None:
    before = sys.getswitchinterval()
    with TestClient(create_app(app_settings.model_copy(update={"gil_switch_interval_ms": 0.25}))):
        assert sys.getswitchinterval() == pytest.approx(0.00025)
    assert sys.getswitchinterval() == before


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("/api/predictions?model=%00", "model"),
        ("/api/traffic/sensors/a%00b", "path"),
        ("/api/traffic/sensors/a%00b/readings", "path"),
        ("/api/traffic/historical/2012-03-01?sensor_id=a%00", "sensor_id"),
        ("/api/traffic/historical/2012-03-01?sensor_id=a%0d%0aX-Injected:%201", "sensor_id"),
        ("/api/traffic/historical/9999-12-31", "day"),
        ("/api/traffic/historical/0001-01-01?utc_offset_minutes=720", "day"),
    ],
)
def test_control_characters_and_far_dates_are_422_naming_the_field(
    app_client: TestClient, url: str, field: str
) -> None:
    response = app_client.get(url)
    assert response.status_code == 422, response.text
    assert [d["field"] for d in response.json()["error"]["details"]] == [field]
