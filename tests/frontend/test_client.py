"""The dashboard's client against a local flaky HTTP server that answers from a script."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from backend.dev.processes import free_port
from frontend.client import ApiClient, ApiError, ApiUnavailable, sse_events

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


# The assistant's streamed answer: server-sent events, never retried once the question has left.
class StreamServer:
    """Answers each POST with the next scripted (status, content type, body pieces, pause between pieces)."""

    def __init__(self) -> None:
        self.script: list[tuple[int, str, list[bytes], float]] = []
        self.posts: list[dict] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner.posts.append({"path": self.path, "headers": dict(self.headers), "body": body})
                status, content_type, pieces, pause = owner.script.pop(0)
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(sum(len(p) for p in pieces)))
                self.end_headers()
                for piece in pieces:
                    self.wfile.write(piece)
                    self.wfile.flush()
                    time.sleep(pause)

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def streaming() -> Iterator[StreamServer]:
    server = StreamServer()
    yield server
    server.server.shutdown()


def _sse(event: str, data: dict) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


def test_server_sent_events_are_parsed() -> None:
    lines = b': a comment\nevent: text\ndata: {"delta": "\xec\xa4\x91\xea\xb5\xac"}\n\ndata: [1,\ndata: 2]\n\n'.split(
        b"\n"
    )
    assert list(sse_events(lines)) == [("text", {"delta": "중구"}), ("message", [1, 2])]


def test_a_streamed_answer_yields_its_events_and_sends_the_llm_key(streaming: StreamServer) -> None:
    done = {"conversation_id": "c" * 32, "message": {"content": "중구 is first"}}
    pieces = [_sse("tool_call", {"order": 1, "name": "risk_ranking", "input": {}}), _sse("text", {"delta": "중구 "}),
              _sse("text", {"delta": "is first"}), _sse("done", done)]  # fmt: skip
    streaming.script = [(200, "text/event-stream", pieces, 0.01)]
    events = list(_client(streaming.url).ask_stream("c" * 32, "Which 구?", "claude-haiku-4-5", "sk-ant-mine"))
    assert [e for e, _ in events] == ["tool_call", "text", "text", "done"] and events[-1][1] == done
    (post,) = streaming.posts
    assert post["path"] == f"/api/assistant/conversations/{'c' * 32}/messages?stream=true"
    assert post["body"] == {"content": "Which 구?", "model": "claude-haiku-4-5"}
    assert post["headers"]["X-Anthropic-API-Key"] == "sk-ant-mine"


def test_a_failed_question_is_never_retried(streaming: StreamServer) -> None:
    envelope = {"error": {"code": "llm_error", "message": "the LLM provider failed", "details": []}}
    streaming.script = [(502, "application/json", [json.dumps(envelope).encode()], 0)] * 3
    with pytest.raises(ApiError) as caught:
        list(_client(streaming.url).ask_stream("c" * 32, "Hi"))
    assert (caught.value.status, caught.value.code, caught.value.message) == (
        502,
        "llm_error",
        "the LLM provider failed",
    )
    assert len(streaming.posts) == 1 and "X-Anthropic-API-Key" not in streaming.posts[0]["headers"]


def test_an_answer_that_stalls_is_not_asked_again(streaming: StreamServer) -> None:
    streaming.script = [(200, "text/event-stream", [_sse("text", {"delta": "Hi"}), _sse("text", {"delta": "!"})], 1.5)]
    events = ApiClient(streaming.url, timeout=0.05, backoff_seconds=0.05).ask_stream("c" * 32, "Hi")  # waits 0.6 s
    assert next(events) == ("text", {"delta": "Hi"})
    with pytest.raises(ApiError, match="the answer stopped before its end"):
        next(events)
    assert len(streaming.posts) == 1


def test_a_question_to_an_unreachable_api_is_tried_again_then_reported() -> None:
    with pytest.raises(ApiUnavailable, match="cannot reach the API at http://127.0.0.1:"):
        list(_client(f"http://127.0.0.1:{free_port()}").ask_stream("c" * 32, "Hi"))
