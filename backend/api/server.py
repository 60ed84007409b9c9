"""The API's HTTP server: uvicorn with httptools, guarded against clients that hold connections or memory without
finishing a request. `python -m backend.api.server --host H --port P` (what `make run`, compose and the image run).

uvicorn bounds neither a request head's size nor the time it takes to arrive, nor how slowly a body may trickle
(its keep-alive timer is cancelled by every byte). `GuardedHttpTools` adds the three:

- a head (request line and headers) over `head_max_bytes`: 431 and the connection closed, the rest never buffered;
- a head not complete within `head_timeout` of its first byte (or of the connection, for the first request): 408;
- a body arriving slower than `body_min_rate` bytes a second over a window of `body_window` seconds: 408 (the
  window is not counted while the server itself has paused reading, waiting for the app).

The keep-alive timeout and a connection cap (`--limit-concurrency`: 503 past it) are uvicorn's own.
"""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import dataclass
from typing import Any

import orjson
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from backend.core.config import Settings, get_settings
from backend.core.logging import logging_config

HEAD_END = b"\r\n\r\n"


@dataclass(frozen=True)
class ServerLimits:
    head_max_bytes: int = 64 * 1024
    head_timeout: float = 10.0
    body_min_rate: float = 1024.0
    body_window: float = 10.0

    @classmethod
    def from_settings(cls, settings: Settings) -> ServerLimits:
        return cls(settings.server_head_max_bytes, settings.server_head_timeout_seconds,
                   settings.server_body_min_bytes_per_second, settings.server_body_window_seconds)  # fmt: skip


def _refusal(status: int, reason: str, message: str) -> bytes:
    body = orjson.dumps({"error": {"code": reason.lower().replace(" ", "_"), "message": message, "details": []}})
    return (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
            "connection: close\r\n\r\n").encode() + body  # fmt: skip


class GuardedHttpTools(HttpToolsProtocol):
    limits = ServerLimits()  # set by `serve` from the settings

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reading_head = True
        self._head_bytes = 0
        self._tail = b""
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._body_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer = self.loop.call_later(self.limits.head_timeout, self._head_late)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._reading_head:
            joined = self._tail + data  # the head's end may straddle two reads
            end = joined.find(HEAD_END)
            self._head_bytes += len(data) if end < 0 else max(0, end + len(HEAD_END) - len(self._tail))
            self._tail = joined[-3:]
            if self._head_bytes > self.limits.head_max_bytes:
                self._refuse(431, "Request Header Fields Too Large",
                             f"the request head is over {self.limits.head_max_bytes:,} bytes")  # fmt: skip
                return
            if self._head_timer is None:
                self._head_timer = self.loop.call_later(self.limits.head_timeout, self._head_late)
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._reading_head = False
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().on_headers_complete()
        if not self.transport.is_closing() and self.cycle is not None and self.cycle.more_body:
            self._body_bytes = 0
            self._body_timer = self.loop.call_later(self.limits.body_window, self._body_check)

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        super().on_body(body)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        self._reading_head, self._head_bytes, self._tail = True, 0, b""  # what comes next is the next request's head

    def _head_late(self) -> None:
        self._head_timer = None
        if self._reading_head and not self.transport.is_closing():
            self._refuse(408, "Request Timeout", f"the request head took over {self.limits.head_timeout:g} s")

    def _body_check(self) -> None:
        self._body_timer = None
        if self.transport.is_closing() or self.cycle is None or not self.cycle.more_body:
            return
        if not self.flow.read_paused and self._body_bytes < self.limits.body_min_rate * self.limits.body_window:
            self._refuse(408, "Request Timeout", f"the body came slower than {self.limits.body_min_rate:g} bytes/s")
            return
        self._body_bytes = 0
        self._body_timer = self.loop.call_later(self.limits.body_window, self._body_check)

    def _refuse(self, status: int, reason: str, message: str) -> None:
        self._stop_timers()
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True  # the app, if it runs, is told the client left
            self.cycle.message_event.set()
        if self.cycle is None or not self.cycle.response_started:
            self.transport.write(_refusal(status, reason, message))
        self.transport.close()

    def _stop_timers(self) -> None:
        for timer in (self._head_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._body_timer = None


def serve(host: str, port: int, settings: Settings, log_level: str | None = None) -> None:
    GuardedHttpTools.limits = ServerLimits.from_settings(settings)
    uvicorn.run(
        "backend.main:app",
        host=host,
        port=port,
        http=GuardedHttpTools,  # type: ignore[arg-type]
        timeout_keep_alive=settings.server_keep_alive_seconds,
        limit_concurrency=settings.server_max_connections,
        log_config=logging_config((log_level or settings.log_level).upper()),
    )


def main() -> None:
    settings = get_settings()
    parser = argparse.ArgumentParser(description="The API server (uvicorn, guarded; limits from SERVER_* settings)")
    parser.add_argument("--host", default=settings.api_host)
    parser.add_argument("--port", type=int, default=settings.api_port)
    parser.add_argument("--log-level", default=None, help="the server's own log level (default: LOG_LEVEL)")
    arguments = parser.parse_args()
    serve(arguments.host, arguments.port, settings, arguments.log_level)


if __name__ == "__main__":
    main()
