"""The two prediction caches: an in-process LRU for models cheaper to run than a Redis round trip is to make
(ECLO), and a shared, best-effort Redis cache for those that cost more (congestion from stored readings: database
reads). Which one a kind uses is its serving's `cache` (backend.predictions.kinds)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from backend.core.metrics import CACHE_LOOKUPS, series

log = logging.getLogger(__name__)


class PredictionCache:
    """Best-effort Redis cache of single predictions.

    It never fails a prediction: a Redis error is logged and the cache is skipped for `pause_seconds`.
    Lookups that arrive while one is in flight are coalesced into one MGET, and writes into one pipeline
    sent in the background: under load a request costs a fraction of a Redis round trip, not two.
    """

    def __init__(self, client: aioredis.Redis | None, prefix: str, ttl_seconds: int, pause_seconds: float = 5.0):
        self.client = client
        self.prefix = prefix
        self.ttl = ttl_seconds
        self.pause_seconds = pause_seconds
        self._paused_until = 0.0
        self._gets: list[tuple[str, asyncio.Future[bytes | None]]] = []
        self._sets: list[tuple[str, bytes]] = []
        self._get_task: asyncio.Task[None] | None = None
        self._set_task: asyncio.Task[None] | None = None

    def key(self, model_version: str, features: bytes) -> str:
        return f"{self.prefix}pred:{model_version}:{hashlib.blake2b(features, digest_size=16).hexdigest()}"

    def _available(self) -> bool:
        return self.client is not None and time.monotonic() >= self._paused_until

    def _failed(self, exc: BaseException) -> None:
        series(CACHE_LOOKUPS, "error").inc()
        self._paused_until = time.monotonic() + self.pause_seconds
        log.warning("prediction cache unavailable, skipped for %.0f s: %s", self.pause_seconds, exc)

    async def get(self, key: str) -> bytes | None:
        if not self._available():
            return None
        future: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        self._gets.append((key, future))
        if self._get_task is None:
            self._get_task = asyncio.create_task(self._flush_gets())
        value = await future
        series(CACHE_LOOKUPS, "miss" if value is None else "hit").inc()
        return value

    def set(self, key: str, value: bytes) -> None:
        """Queue a write; it is sent in the background and never delays the answer."""
        if not self._available():
            return
        self._sets.append((key, value))
        if self._set_task is None:
            self._set_task = asyncio.create_task(self._flush_sets())

    async def _flush_gets(self) -> None:
        try:
            while self._gets:
                batch, self._gets = self._gets, []
                try:
                    values = await self.client.mget([key for key, _ in batch])  # type: ignore[union-attr]
                except (RedisError, OSError) as exc:
                    self._failed(exc)
                    values = [None] * len(batch)
                for (_, future), value in zip(batch, values, strict=True):
                    if not future.done():
                        future.set_result(value)
        finally:
            self._get_task = None

    async def _flush_sets(self) -> None:
        try:
            while self._sets:
                batch, self._sets = self._sets, []
                try:
                    pipe = self.client.pipeline(transaction=False)  # type: ignore[union-attr]
                    for key, value in batch:
                        pipe.set(key, value, ex=self.ttl)
                    await pipe.execute()
                except (RedisError, OSError) as exc:
                    self._failed(exc)
        finally:
            self._set_task = None


class Cache(Protocol):
    def key(self, model_version: str, features: bytes) -> Any: ...

    async def get(self, key: Any) -> bytes | None: ...

    def set(self, key: Any, value: bytes) -> None: ...


class LocalPredictionCache:
    """An in-process LRU of answers by model version and encoded input: a hit costs a dict lookup. Each API
    process keeps its own; `max_entries` 0 turns it off."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[bytes, bytes] = OrderedDict()

    def key(self, model_version: str, features: bytes) -> bytes:
        return model_version.encode() + b"\0" + features

    async def get(self, key: bytes) -> bytes | None:
        if not self.max_entries:
            return None
        value = self._entries.get(key)
        if value is None:
            series(CACHE_LOOKUPS, "miss").inc()
            return None
        self._entries.move_to_end(key)
        series(CACHE_LOOKUPS, "hit").inc()
        return value

    def set(self, key: bytes, value: bytes) -> None:
        if not self.max_entries:
            return
        self._entries[key] = value
        if len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
