"""One pure-ASGI middleware for every request: a request id (taken from `X-Request-ID` or made, returned in
the same header and bound to the logs), the request body's size limit (413 before it is read whole), Prometheus
metrics by route template, and a JSON access log line for every failed request (every request with
ACCESS_LOG=true: a line costs a noticeable share of single-prediction throughput)."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from starlette.datastructures import State
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.api.errors import error_response
from backend.core.errors import InvalidRequest, ServiceError, TooLarge, Unauthorized
from backend.core.logging import request_id_var
from backend.core.metrics import HTTP_LATENCY, HTTP_REQUESTS, series

HEADER = b"x-request-id"
# A request id sent by the client is kept when it is of this alphabet and length; any other is replaced (the
# replacement is what the answer's X-Request-ID carries): ids land in logs, records and their CSV export.
SAFE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,64}")
# Control characters (NUL among them) have no place in a path or a query parameter: refused by name before routing.
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
QUIET_PATHS = frozenset({"/health/live", "/metrics"})  # probes and scrapes: counted, not logged
log = logging.getLogger("backend.access")
# A refused body's rest is read and dropped (see RequestContextMiddleware.refuse) while the whole body is at most
# this much over the limit, for at most this long.
DRAIN_BYTES = 64 * 1024 * 1024
DRAIN_SECONDS = 5.0
CLOSE = (b"connection", b"close")


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
        drain_bytes: int = DRAIN_BYTES,
        drain_seconds: float = DRAIN_SECONDS,
        key_first_skip: str = "",
        max_json_members: int | None = None,
    ) -> None:
        """`own_limits`: paths whose routes stream their body under a limit of their own (uploads). `drain_bytes`,
        `drain_seconds`: how much of a refused body is read and dropped after the 413, at most (see `refuse`).
        `key_first_skip`: the prefix of HotRoutes' paths (`<prefix><model>`), which check their key before their
        body themselves."""
        self.app = app
        self.ids = RequestIds()
        self.access_log = access_log
        self.max_body_bytes = max_body_bytes
        self.own_limits = own_limits
        self.drain_bytes = drain_bytes
        self.drain_seconds = drain_seconds
        self.key_first_skip = key_first_skip
        self.max_json_members = max_json_members

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        given = next((v for k, v in scope["headers"] if k == HEADER), b"")
        request_id = given.decode("ascii") if SAFE_REQUEST_ID.fullmatch(given) else self.ids.next()
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)
        status = 500
        refused = False  # answered 413 here, mid-body: whatever the app sends after is dropped
        started = False  # the app's answer has begun (one that came before the body, draining it after)

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if refused:
                return
            if message["type"] == "http.response.start":
                status, started = message["status"], True
                message["headers"] = [*message.get("headers", []), (HEADER, request_id.encode("latin-1"))]
            await send(message)

        try:
            limit = self.max_body_bytes
            if (where := _control_character(scope)) is not None:
                await _refused_input(where)(scope, receive, send_with_id)
            elif (refusal := await _key_refused(scope, self.key_first_skip)) is not None:
                await _drain_then(refusal, scope, receive, send_with_id, self.drain_bytes, self.drain_seconds)
            elif limit is None or scope["path"] in self.own_limits:
                await self.app(scope, receive, send_with_id)
            elif (declared := _declared_length(scope)) > limit:
                message = f"the body is {declared:,} bytes; at most {limit:,} are accepted"
                # nothing read yet: with `Expect: 100-continue`, reading would send "100 Continue" after the 413
                drain = declared <= limit + self.drain_bytes and not _expects_continue(scope)
                await self.refuse(message, limit + self.drain_bytes if drain else None, receive, send_with_id)
            else:
                received = members = 0
                most_members = self.max_json_members if _is_json(scope) else None

                async def receive_limited() -> Message:
                    """Counts the body; past the limit, answers 413 and tells the app the client left (a body
                    sent without Content-Length is not read whole either)."""
                    nonlocal received, refused, members
                    message = await receive()
                    if message["type"] == "http.request":
                        received += len(message.get("body", b""))
                        if most_members is not None and not started:
                            members += message.get("body", b"").count(b",")
                            if members > most_members:
                                rest = limit + self.drain_bytes - received if message.get("more_body", False) else None
                                await self.refuse(f"the JSON body holds over {most_members:,} members and items (',' "
                                                  "counted); send fewer", rest, receive, send_with_id)  # fmt: skip
                                refused = True
                                return {"type": "http.disconnect"}
                        if received > limit and started:  # answered before the body: drained, bytes dropped
                            if received > limit + self.drain_bytes:
                                return {"type": "http.disconnect"}
                            return {**message, "body": b""}
                        if received > limit:
                            rest = limit + self.drain_bytes - received if message.get("more_body", False) else None
                            await self.refuse(f"the body exceeds {limit:,} bytes", rest, receive, send_with_id)
                            refused = True
                            return {"type": "http.disconnect"}
                    return message

                try:
                    await self.app(scope, receive_limited, send_with_id)
                except ClientDisconnect:
                    if not refused:  # else what the app was told: the client has its 413, nothing to log
                        raise
        except ClientDisconnect:
            raise
        except Exception as exc:
            # Answered here, not by Starlette's outermost handler: that one re-raises after its 500, and the server
            # then drops the connection; a client's keep-alive connection outlives an unexpected error.
            if started:
                raise
            response = await _handler_of(scope["app"].exception_handlers, exc)(Request(scope), exc)
            await response(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - began
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

    async def refuse(self, message: str, rest: int | None, receive: Receive, send: Send) -> None:
        """Answers 413 in the envelope with `Connection: close`, then reads and drops the rest of the body before
        the response ends. uvicorn closes the connection once the response ends (on `Connection: close`, the
        client's or this one); a body still unread in the socket then makes the kernel reset the connection, and a
        client that writes its whole body before it reads (urllib, curl without `Expect`) gets the reset
        (ConnectionResetError, BrokenPipeError), never the 413. The envelope is sent whole first (a client that
        reads early has it at once), its end only after the drain: uvicorn's `receive` answers nothing once the
        response has ended.

        The drain is bounded: it stops when the body ends or the client leaves, or once the whole body is over the
        limit by `drain_bytes` (64 MiB; an announced body that large is not drained at all), or after
        `drain_seconds` (5 s, one deadline for the whole drain: a slow client's body is cut too). The connection is
        then closed with the rest unread, and that client may see a reset instead of the 413. Every `receive` is
        awaited (the event loop is not held) and each message is dropped as it comes (bounded memory).

        `rest`: how many more bytes of the body may be drained; None when none are to be read (the body has ended,
        is announced too large, or its client waits for "100 Continue")."""
        await _answer_then_drain(_too_large(message), receive, send, rest, self.drain_seconds)


async def _drain(receive: Receive, most: int, seconds: float) -> bool:
    """Reads and drops request body messages until the last one, the client leaving, `most` bytes or `seconds`:
    True when the body ended (or the client left), False when it was cut."""
    drained = 0
    try:
        async with asyncio.timeout(seconds):
            while drained <= most:
                message = await receive()
                if message["type"] != "http.request" or not message.get("more_body", False):
                    return True
                drained += len(message.get("body", b""))
    except TimeoutError:
        pass
    return False


BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


async def _key_refused(scope: Scope, skip: str) -> JSONResponse | None:
    """With keys on, a request that may carry a body (every such route needs a key) shows a valid key before any of
    its body is read: a key-less client cannot hold memory with unfinished bodies. The route checks the scope."""
    path: str = scope["path"]
    if scope["method"] not in BODY_METHODS or (skip and path.startswith(skip) and "/" not in path[len(skip) :]):
        return None
    keys = scope["app"].state.services.api_keys
    if keys is None:
        return None
    kind, _, key = next((v for k, v in scope["headers"] if k == b"authorization"), b"").decode("latin-1").partition(" ")
    try:
        if kind.lower() != "bearer" or not key.strip():
            raise Unauthorized("this route needs an API key, sent as `Authorization: Bearer <key>`")
        await keys.authenticate(key.strip())
    except ServiceError as exc:
        return error_response(exc.status_code, exc.code, exc.message, exc.details, exc.headers)
    return None


async def _drain_then(
    response: Response, scope: Scope, receive: Receive, send: Send, most: int, seconds: float
) -> None:
    """`response` to a request whose body was not read, as a 413 is answered (see RequestContextMiddleware.refuse):
    sent whole at once with `Connection: close`, then the body read and dropped (at most `most` bytes and
    `seconds`) before the response ends, so that a client writing its whole body before reading gets the answer,
    not a reset."""
    await _answer_then_drain(response, receive, send, None if _expects_continue(scope) else most, seconds)


async def _answer_then_drain(
    response: Response, receive: Receive, send: Send, rest: int | None, seconds: float
) -> None:
    """`response` sent whole with `Connection: close`, then at most `rest` bytes of the body drained (none: None)
    within `seconds`, then the response's end."""
    headers = [*response.raw_headers, CLOSE]
    await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": response.body, "more_body": True})
    if rest is not None:
        await _drain(receive, rest, seconds)
    await send({"type": "http.response.body", "body": b"", "more_body": False})


def _control_character(scope: Scope) -> str | None:
    """The path, or the name of the query parameter, holding a control character; None when there is none."""
    if CONTROL.search(scope["path"]):
        return "path"
    for name, value in parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True):
        if CONTROL.search(name):
            return "query"
        if CONTROL.search(value):
            return name
    return None


def _refused_input(where: str) -> JSONResponse:
    return _answer(InvalidRequest(f"{where} holds a control character (such as NUL); none is accepted",
                                  [{"field": where}]))  # fmt: skip


def _declared_length(scope: Scope) -> int:
    value = next((v for k, v in scope["headers"] if k == b"content-length"), b"")
    return int(value) if value.isdigit() and len(value) < 19 else (1 << 62 if value else 0)


def _is_json(scope: Scope) -> bool:
    content_type = next((v for k, v in scope["headers"] if k == b"content-type"), b"application/json")
    return b"json" in content_type.lower()


def _expects_continue(scope: Scope) -> bool:
    return any(k == b"expect" and v.lower() == b"100-continue" for k, v in scope["headers"])


def _too_large(message: str) -> JSONResponse:
    return _answer(TooLarge(message, [{"field": "body"}]))


def _answer(error: ServiceError) -> JSONResponse:
    """The envelope of an error answered here, before the app (its handlers are not reached)."""
    return error_response(error.status_code, error.code, error.message, error.details)


@dataclass(frozen=True, slots=True)
class AnsweredRoute:
    """`scope["route"]` of a request HotRoutes answered: RequestContextMiddleware labels metrics by its path."""

    path: str


# (app state, model name, Authorization header, the body's reader, request id) -> the JSON answer. The body is read
# by the answer, after it checked the key.
HotAnswer = Callable[[State, str, str | None, Callable[[], Awaitable[bytes]], str | None], Awaitable[bytes]]
JSON_TYPE = (b"content-type", b"application/json")


class HotRoutes:
    """POSTs to the single-prediction route (`<prefix><model>`) answered straight from ASGI: FastAPI's routing, its
    Request and Response objects and its exception middleware cost more a request than a bare uvicorn callable's
    whole answer. `answer` is the function the FastAPI route calls too, given the model's name. An error it raises
    is answered by the app's own exception handler for it; other paths and methods go on to the app. Sits inside
    RequestContextMiddleware (request id, body limit, metrics)."""

    def __init__(self, app: ASGIApp, prefix: str, answer: HotAnswer) -> None:
        self.app = app
        self.prefix = prefix
        self.answer = answer
        self.route = AnsweredRoute(prefix + "{model}")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"] if scope["type"] == "http" and scope["method"] == "POST" else ""
        model = path[len(self.prefix) :] if path.startswith(self.prefix) else ""
        if not model or "/" in model:
            await self.app(scope, receive, send)
            return

        body_read = False

        async def read_body() -> bytes:
            nonlocal body_read
            chunks: list[bytes] = []
            while True:
                message = await receive()
                if message["type"] != "http.request":  # the client left, or the body limit answered 413
                    raise ClientDisconnect()
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    body_read = True
                    return b"".join(chunks)

        scope["route"] = self.route
        app = scope["app"]
        authorization = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), None)
        request_id = scope.get("state", {}).get("request_id")
        try:
            content = await self.answer(app.state, model, authorization, read_body, request_id)
        except ClientDisconnect:
            return
        except Exception as exc:
            response = await _handler_of(app.exception_handlers, exc)(Request(scope), exc)
            if body_read:
                await response(scope, receive, send)
            else:  # refused by its key, before its body
                await _drain_then(response, scope, receive, send, DRAIN_BYTES, DRAIN_SECONDS)
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
