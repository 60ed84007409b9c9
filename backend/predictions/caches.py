"""Single ECLO predictions, answered in-process, and the two prediction caches: an in-process LRU for models
cheaper than a Redis round trip (ECLO: ~0.3 ms with its explanation against ~0.5 ms to ask Redis), and a shared,
best-effort Redis cache for those that cost more (congestion from stored readings: database reads)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from backend.core.errors import InvalidRequest
from backend.core.metrics import CACHE_LOOKUPS, PREDICTIONS, series
from backend.db.recorder import Recorder
from backend.ml.eclo.model import EcloModel
from backend.ml.protocol import PredictiveModel
from backend.ml.registry import ModelRegistry

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


def parse_json_object(body: bytes) -> dict[str, Any]:
    """A request body that must be one JSON object; its fields are validated by the model runtime."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"the body is not valid JSON: {exc}", details=[{"field": "body"}]) from exc
    if not isinstance(value, dict):
        raise InvalidRequest("the body must be a JSON object", details=[{"field": "body"}])
    return value


class EcloPredictionService:
    """Single ECLO predictions: the registry's model behind the cache (one dependency for the hot route)."""

    def __init__(
        self, registry: ModelRegistry, cache: Cache, recorder: Recorder | None, model_name: str = "eclo"
    ) -> None:
        self.registry = registry
        self.cache = cache
        self.recorder = recorder
        self.model_name = model_name

    def model(self) -> EcloModel:
        """The loaded ECLO model; ModelNotFound (404) when none is."""
        model = self.registry.get(self.model_name)
        assert isinstance(model, EcloModel), f"model {self.model_name!r} is not of the ECLO kind"
        return model

    async def predict(self, row: Mapping[str, Any], request_id: str | None = None, key_id: str | None = None) -> bytes:
        """Validate and encode the row (InvalidRow names every bad field), then answer from the cache or the
        booster. Returns the JSON body of an `EcloPredictionResponse`, built with orjson: this is the hot path.
        The record of the prediction is written later, by the recorder's thread."""
        started = time.perf_counter()
        model = self.model()
        encoded = model.encode(row)
        key = self.cache.key(model.version, encoded.features.tobytes() + "\n".join(encoded.notes).encode())
        hit = await self.cache.get(key)
        if hit is not None:
            answer = orjson.loads(hit)
            record_prediction(self.recorder, model, row, started, True, request_id, key_id,
                              eclo=answer["eclo"], risk_level=answer["risk_level"])  # fmt: skip
            return _with_cached_flag(hit, True)
        prediction = model.predict_encoded(encoded, explain=True)
        body = orjson.dumps(prediction.to_dict())
        self.cache.set(key, body)
        record_prediction(self.recorder, model, row, started, False, request_id, key_id,
                          eclo=prediction.eclo, risk_level=prediction.risk_level)  # fmt: skip
        return _with_cached_flag(body, False)


def record_prediction(
    recorder: Recorder | None,
    model: PredictiveModel,
    inputs: Mapping[str, Any],
    started: float,
    cached: bool,
    request_id: str | None,
    key_id: str | None,
    **answer: Any,
) -> None:
    """Count a single prediction of any kind and hand its record to the recorder. `answer` holds the columns
    of its kind: `eclo` and `risk_level` for ECLO, `output` (the answer whole) for the others. On an event loop
    this is done on the loop's next turn, after the answer is sent: the client is reading it meanwhile."""
    latency_ms = (time.perf_counter() - started) * 1e3
    created_at = datetime.now(UTC)
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        _record(recorder, model, inputs, created_at, latency_ms, cached, request_id, key_id, answer)
    else:
        loop.call_soon(_record, recorder, model, inputs, created_at, latency_ms, cached, request_id, key_id, answer)


def _record(
    recorder: Recorder | None,
    model: PredictiveModel,
    inputs: Mapping[str, Any],
    created_at: datetime,
    latency_ms: float,
    cached: bool,
    request_id: str | None,
    key_id: str | None,
    answer: dict[str, Any],
) -> None:
    series(PREDICTIONS, model.name, model.version, "true" if cached else "false").inc()
    if recorder is None:
        return
    recorder.record_prediction(
        {
            "created_at": created_at,
            "model_name": model.name,
            "model_version": model.version,
            "inputs": dict(inputs),
            "latency_ms": latency_ms,
            "cached": cached,
            "request_id": request_id,
            "key_id": key_id,
            **answer,
        }
    )


def _with_cached_flag(body: bytes, cached: bool) -> bytes:
    """Append `cached` to a JSON object's bytes without parsing them again."""
    return body[:-1] + (b',"cached":true}' if cached else b',"cached":false}')
