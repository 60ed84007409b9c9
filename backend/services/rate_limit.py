"""Per-key request limits: a token bucket per API key in Redis, shared by every API process on that Redis.

A key holds up to `burst` tokens and gains `per_second` of them a second; each request takes one, and a request that
finds none is refused (429) with the seconds until the next token. One Lua script refills, takes and answers, so
concurrent requests of one key (in any process) never take the same token. Its clock is Redis's own (TIME): API
processes on different hosts agree on it. A bucket left alone until full is deleted (its TTL): a missing bucket is a
full one.

While Redis cannot be asked the limit fails open: requests pass (counted in `rate_limit_unchecked_total`), Redis is
asked again `retry_seconds` later (not on every request: a Redis that does not answer costs its socket timeout), and
a warning is logged at most once per `warn_seconds`."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from backend.core.config import Settings
from backend.core.errors import ServiceError
from backend.core.metrics import RATE_LIMIT_UNCHECKED, RATE_LIMITED
from backend.core.redis import async_redis

log = logging.getLogger(__name__)

# KEYS[1]: the bucket (a hash of tokens and when they were counted); ARGV: tokens per second, burst.
# Answers "0" when a token was taken, else the seconds until one (as text: Redis would truncate a Lua number).
TOKEN_BUCKET = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) + tonumber(time[2]) / 1000000
local held = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(held[1])
local at = tonumber(held[2])
if tokens == nil or at == nil then
  tokens = burst
else
  tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
end
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = math.max((1 - tokens) / rate, 0.000001)  -- never "0", which reads as a token taken
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens), 'at', string.format('%.6f', now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)
return string.format('%.6f', wait)
"""


class RateLimited(ServiceError):
    """A key over its request rate: 429 with Retry-After (whole seconds, at least 1)."""

    status_code = 429
    code = "rate_limited"

    def __init__(self, key_id: str, retry_after_seconds: int, per_second: float, burst: int) -> None:
        super().__init__(
            f"API key {key_id} is over its rate limit of {per_second:g} requests a second (bursts of {burst}): "
            f"retry in {retry_after_seconds} s",
            details=[{"key_id": key_id, "retry_after_seconds": retry_after_seconds}],
            headers={"Retry-After": str(retry_after_seconds)},
        )


class RateLimiter:
    """The same limit for every key: `per_second` requests a second on average, bursts of `burst`."""

    def __init__(
        self,
        client: aioredis.Redis,
        prefix: str,
        per_second: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        retry_seconds: float = 1.0,
        warn_seconds: float = 60.0,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.per_second = per_second
        self.burst = burst
        self.clock = clock
        self.retry_seconds = retry_seconds
        self.warn_seconds = warn_seconds
        self._script = client.register_script(TOKEN_BUCKET)
        self._skip_until = -math.inf
        self._warned_at = -math.inf

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimiter | None:
        """The API's limiter on REDIS_URL, or None with RATE_LIMIT_ENABLED=false."""
        if not settings.rate_limit_enabled:
            return None
        client = async_redis(settings.redis_url, settings)
        return cls(client, settings.key_prefix, settings.rate_limit_per_second, settings.rate_limit_burst)

    def bucket(self, key_id: str) -> str:
        return f"{self.prefix}ratelimit:{key_id}"

    async def take(self, key_id: str) -> None:
        """Take one of the key's tokens; RateLimited when it has none. Never fails on Redis (see the module)."""
        now = self.clock()
        if now < self._skip_until:
            RATE_LIMIT_UNCHECKED.inc()
            return
        try:
            wait = float(await self._script(keys=[self.bucket(key_id)], args=[self.per_second, self.burst]))
        except (RedisError, OSError) as exc:
            self._skip_until = now + self.retry_seconds
            RATE_LIMIT_UNCHECKED.inc()
            if now - self._warned_at >= self.warn_seconds:
                self._warned_at = now
                log.warning(
                    "cannot ask Redis for the API keys' rate limits: requests pass unchecked until it answers "
                    "(logged once per %g s): %s",
                    self.warn_seconds,
                    str(exc)[:200],
                )
            return
        if wait > 0:
            RATE_LIMITED.inc()
            raise RateLimited(key_id, max(1, math.ceil(wait)), self.per_second, self.burst)

    async def aclose(self) -> None:
        await self.client.aclose()
