"""Single ECLO predictions, answered in-process, with a best-effort Redis cache in front of the booster."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Mapping
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from backend.api.schemas import Contribution, EcloPredictionResponse
from backend.ml.predictor import EcloModel

log = logging.getLogger(__name__)


class PredictionCache:
    """Never fails a prediction: a Redis error is logged, and the cache is skipped for a while after it."""

    def __init__(self, client: aioredis.Redis | None, prefix: str, ttl_seconds: int, pause_seconds: float = 5.0):
        self.client = client
        self.prefix = prefix
        self.ttl = ttl_seconds
        self.pause_seconds = pause_seconds
        self._paused_until = 0.0
        self.hits = 0
        self.misses = 0
        self.failures = 0

    def key(self, model_version: str, features: bytes) -> str:
        return f"{self.prefix}pred:{model_version}:{hashlib.blake2b(features, digest_size=16).hexdigest()}"

    def _available(self) -> bool:
        return self.client is not None and time.monotonic() >= self._paused_until

    def _failed(self, exc: Exception) -> None:
        self.failures += 1
        self._paused_until = time.monotonic() + self.pause_seconds
        log.warning("prediction cache unavailable, skipped for %.0f s: %s", self.pause_seconds, exc)

    async def get(self, key: str) -> bytes | None:
        if not self._available():
            return None
        try:
            value = await self.client.get(key)  # type: ignore[union-attr]
        except (RedisError, OSError) as exc:
            self._failed(exc)
            return None
        if value is None:
            self.misses += 1
        else:
            self.hits += 1
        return value

    async def set(self, key: str, value: bytes) -> None:
        if not self._available():
            return
        try:
            await self.client.set(key, value, ex=self.ttl)  # type: ignore[union-attr]
        except (RedisError, OSError) as exc:
            self._failed(exc)


async def predict_eclo(model: EcloModel, row: Mapping[str, Any], cache: PredictionCache) -> EcloPredictionResponse:
    """Validate and encode the row (422 on any bad field), then answer from the cache or the booster."""
    features = model.encode(row)
    key = cache.key(model.version, features.tobytes())
    hit = await cache.get(key)
    if hit is not None:
        return EcloPredictionResponse(**orjson.loads(hit), cached=True)
    prediction = model.predict_encoded(features, explain=True)
    response = EcloPredictionResponse(
        eclo=prediction.eclo,
        risk_level=prediction.risk_level,
        model_version=prediction.model_version,
        explanation=[
            Contribution(feature=c.feature, contribution=c.contribution) for c in prediction.explanation or ()
        ],
        cached=False,
    )
    await cache.set(key, response.model_dump_json(exclude={"cached"}).encode())
    return response
