"""One pure-ASGI middleware for every request: a request id (taken from `X-Request-ID` or made, returned in
the same header and bound to the logs), the request body's size limit (413 before it is read whole), Prometheus
metrics by route template, and a JSON access log line for every failed request (every request with
ACCESS_LOG=true: a line costs ~10% of single-prediction throughput)."""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import State
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.api.errors import error_response
from backend.core.errors import TooLarge
from backend.core.logging import request_id_var
from backend.core.metrics import HTTP_LATENCY, HTTP_REQUESTS, series

HEADER = b"x-request-id"
QUIET_PATHS = frozenset({"/health/live", "/metrics"})  # probes and scrapes: counted, not logged
log = logging.getLogger("backend.access")


class RequestIds:
    """Unique ids without a uuid4 per request: a random per-process prefix and a counter."""

    def __init__(self) -> None:
        self.prefix = os.urandom(6).hex()
        self.counter = itertools.count(1)

    def next(self) -> str:
        return f"{self.prefix}-{next(self.counter):x}"


class RequestContextMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware): it costs microseconds on the hot prediction path."""

    def __init__(
        self,
        app: ASGIApp,
        access_log: bool = True,
        max_body_bytes: int | None = None,
        own_limits: frozenset[str] = frozenset(),
    ) -> None:
        """`own_limits`: paths whose routes stream their body under a limit of their own (uploads)."""
        self.app = app
        self.ids = RequestIds()
        self.access_log = access_log
        self.max_body_bytes = max_body_bytes
        self.own_limits = own_limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        given = next((v for k, v in scope["headers"] if k == HEADER), b"")
        request_id = given.decode("latin-1")[:64] if given else self.ids.next()
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)
        status = 500
        refused = False  # answered 413 here, mid-body: whatever the app sends after is dropped

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if refused:
                return
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (HEADER, request_id.encode("latin-1"))]
            await send(message)

        try:
            limit = self.max_body_bytes
            if limit is None or scope["path"] in self.own_limits:
                await self.app(scope, receive, send_with_id)
            elif (declared := _declared_length(scope)) > limit:
                message = f"the body is {declared:,} bytes; at most {limit:,} are accepted"
                await _too_large(message)(scope, receive, send_with_id)
            else:
                received = 0

                async def receive_limited() -> Message:
                    """Counts the body; past the limit, answers 413 and tells the app the client left (a body
                    sent without Content-Length is not read whole either)."""
                    nonlocal received, refused
                    message = await receive()
                    if message["type"] == "http.request":
                        received += len(message.get("body", b""))
                        if received > limit:
                            await _too_large(f"the body exceeds {limit:,} bytes")(scope, receive, send_with_id)
                            refused = True
                            return {"type": "http.disconnect"}
                    return message

                await self.app(scope, receive_limited, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"]
            series(HTTP_REQUESTS, method, template, str(status)).inc()
            series(HTTP_LATENCY, method, template).observe(elapsed)
            if (self.access_log or status >= 400) and scope["path"] not in QUIET_PATHS:
                log.info(
                    "%s %s %s",
                    method,
                    scope["path"],
                    status,
                    extra={"route": template, "status": status, "duration_ms": round(elapsed * 1e3, 3)},
                )
            request_id_var.reset(token)


def _declared_length(scope: Scope) -> int:
    value = next((v for k, v in scope["headers"] if k == b"content-length"), b"")
    return int(value) if value.isdigit() and len(value) < 19 else (1 << 62 if value else 0)


def _too_large(message: str) -> JSONResponse:
    error = TooLarge(message, [{"field": "body"}])
    return error_response(error.status_code, error.code, error.message, error.details)


@dataclass(frozen=True, slots=True)
class AnsweredRoute:
    """`scope["route"]` of a request HotRoutes answered: RequestContextMiddleware labels metrics by its path."""

    path: str


HotAnswer = Callable[[State, str | None, bytes, str | None], Awaitable[bytes]]
JSON_TYPE = (b"content-type", b"application/json")


class HotRoutes:
    """POSTs to the single-prediction routes answered straight from ASGI: FastAPI's routing, its Request and
    Response objects and its exception middleware cost ~0.15 ms a request on this project's VM, more than a bare
    uvicorn callable's whole answer (~0.12 ms). `answers` maps a path to the function its FastAPI route calls
    too. An error it raises is answered by the app's own exception handler for it; other methods go on to the
    app. Sits inside RequestContextMiddleware (request id, body limit, metrics)."""

    def __init__(self, app: ASGIApp, answers: Mapping[str, HotAnswer]) -> None:
        self.app = app
        self.answers = dict(answers)
        self.routes = {path: AnsweredRoute(path) for path in answers}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        answer = self.answers.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if answer is None:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left, or the body limit answered 413
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        scope["route"] = self.routes[scope["path"]]
        app = scope["app"]
        authorization = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), None)
        try:
            content = await answer(app.state, authorization, b"".join(chunks), scope.get("state", {}).get("request_id"))
        except Exception as exc:
            response = await _handler_of(app.exception_handlers, exc)(Request(scope), exc)
            await response(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(content)).encode()), JSON_TYPE]})  # fmt: skip
        await send({"type": "http.response.body", "body": content})


def _handler_of(handlers: Mapping[Any, Callable[..., Any]], exc: Exception) -> Callable[..., Any]:
    """The app's handler for `exc`'s class or its nearest base, as Starlette picks it."""
    for kind in type(exc).__mro__:
        if kind in handlers:
            return handlers[kind]
    raise exc
