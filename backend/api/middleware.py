"""A request id for every request: taken from `X-Request-ID` or made, and returned in the same header."""

from __future__ import annotations

import itertools
import os

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = b"x-request-id"


class RequestIds:
    """Unique ids without a uuid4 per request: a random per-process prefix and a counter."""

    def __init__(self) -> None:
        self.prefix = os.urandom(6).hex()
        self.counter = itertools.count(1)

    def next(self) -> str:
        return f"{self.prefix}-{next(self.counter):x}"


class RequestIdMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware): it costs microseconds on the hot prediction path."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.ids = RequestIds()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope["headers"] if k == HEADER), b"")
        request_id = given.decode("latin-1")[:64] if given else self.ids.next()
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (HEADER, request_id.encode("latin-1"))]
            await send(message)

        await self.app(scope, receive, send_with_id)
