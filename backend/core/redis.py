"""Redis clients built from settings, with short timeouts so a dead Redis fails fast."""

from __future__ import annotations

import redis
import redis.asyncio as aioredis

from backend.core.config import Settings


def sync_redis(url: str, settings: Settings) -> redis.Redis:
    timeout = settings.redis_socket_timeout_seconds
    return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)


def async_redis(url: str, settings: Settings) -> aioredis.Redis:
    timeout = settings.redis_socket_timeout_seconds
    return aioredis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
