"""The single-prediction cache against a real Redis: coalesced lookups, background writes, failures skipped."""

from __future__ import annotations

import asyncio
import uuid

import redis.asyncio as aioredis

from backend.dev.processes import free_port
from backend.predictions.caches import LocalPredictionCache, PredictionCache


def _cache(url: str) -> tuple[PredictionCache, list[int]]:
    client = aioredis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
    cache = PredictionCache(client, f"cache-test-{uuid.uuid4().hex[:8]}:", ttl_seconds=60)
    calls: list[int] = []
    mget = client.mget

    async def counting_mget(keys: list[str]) -> list:
        calls.append(len(keys))
        return await mget(keys)

    client.mget = counting_mget  # type: ignore[method-assign]
    return cache, calls


def test_lookups_together_share_one_round_trip(redis_url: str) -> None:
    async def scenario() -> None:
        cache, calls = _cache(redis_url)
        keys = [cache.key("v1", bytes([i])) for i in range(50)]
        assert await asyncio.gather(*(cache.get(k) for k in keys)) == [None] * 50
        assert len(calls) <= 2 and sum(calls) == 50
        for i, key in enumerate(keys):
            cache.set(key, f'{{"eclo":{i}}}'.encode())
        await asyncio.sleep(0.05)  # the background write
        values = await asyncio.gather(*(cache.get(k) for k in keys))
        assert values[7] == b'{"eclo":7}' and all(v is not None for v in values)
        await cache.client.aclose()

    asyncio.run(scenario())


def test_a_dead_redis_is_skipped_without_failing(redis_url: str) -> None:
    async def scenario() -> None:
        cache, calls = _cache(f"redis://127.0.0.1:{free_port()}/0")
        assert await cache.get(cache.key("v1", b"x")) is None  # connection refused: a miss, not an error
        assert len(calls) == 1
        assert await cache.get(cache.key("v1", b"y")) is None
        assert len(calls) == 1  # paused: no second attempt for a while
        cache.set("k", b"v")  # dropped quietly while paused
        await cache.client.aclose()

    asyncio.run(scenario())


def test_the_local_cache_keeps_the_most_recently_used() -> None:
    async def scenario() -> None:
        cache = LocalPredictionCache(max_entries=2)
        a, b, c = (cache.key("v1", bytes([i])) for i in range(3))
        cache.set(a, b"A")
        cache.set(b, b"B")
        assert await cache.get(a) == b"A"  # a is now the most recent
        cache.set(c, b"C")  # evicts b
        assert [await cache.get(k) for k in (a, b, c)] == [b"A", None, b"C"]
        assert cache.key("v2", bytes([0])) != a  # another model version never shares an answer
        off = LocalPredictionCache(max_entries=0)
        off.set(a, b"A")
        assert await off.get(a) is None

    asyncio.run(scenario())
