"""Per-key token buckets in the tests' real Redis: bursts, refills, one bucket per key, atomic under concurrency,
failing open when Redis cannot be asked."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
import redis.asyncio as aioredis

from backend.core.metrics import RATE_LIMIT_UNCHECKED
from backend.dev.processes import free_port
from backend.services.rate_limit import RateLimited, RateLimiter

T = TypeVar("T")


def with_limiter(
    url: str, per_second: float, burst: int, use: Callable[[RateLimiter], Awaitable[T]], **options: Any
) -> T:
    """`use(limiter)` in an event loop of its own, the limiter's client closed after."""

    async def run() -> T:
        client = aioredis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        limiter = RateLimiter(client, f"test-{uuid.uuid4().hex[:8]}:", per_second, burst, **options)
        try:
            return await use(limiter)
        finally:
            await limiter.aclose()

    return asyncio.run(run())


async def outcomes(limiter: RateLimiter, key_id: str, count: int) -> list[int | None]:
    """For each of `count` requests: None when it passed, else its Retry-After."""
    answers: list[int | None] = []
    for _ in range(count):
        try:
            await limiter.take(key_id)
            answers.append(None)
        except RateLimited as refused:
            answers.append(int(refused.headers["Retry-After"]))
    return answers


def test_a_key_gets_its_burst_then_a_429_with_retry_after_and_other_keys_are_unaffected(redis_url: str) -> None:
    async def use(limiter: RateLimiter) -> None:
        assert await outcomes(limiter, "aaaaaaaaaaaa", 4) == [None, None, None, 1]
        assert await outcomes(limiter, "bbbbbbbbbbbb", 3) == [None, None, None]
        with pytest.raises(RateLimited) as refused:
            await limiter.take("aaaaaaaaaaaa")
        error = refused.value
        assert (error.status_code, error.code) == (429, "rate_limited")
        assert error.details == [{"key_id": "aaaaaaaaaaaa", "retry_after_seconds": 1}]
        assert "aaaaaaaaaaaa" in error.message and "2 requests a second" in error.message
        # The bucket is deleted once it would be full again: 3 tokens at 2 a second, and a second of margin.
        ttl = await limiter.client.pttl(limiter.bucket("aaaaaaaaaaaa"))
        assert 0 < ttl <= 2500
        assert limiter.bucket("aaaaaaaaaaaa") == f"{limiter.prefix}ratelimit:aaaaaaaaaaaa"

    with_limiter(redis_url, 2, 3, use)


def test_a_slow_limit_answers_the_whole_seconds_until_a_token(redis_url: str) -> None:
    async def use(limiter: RateLimiter) -> list[int | None]:
        return await outcomes(limiter, "cccccccccccc", 2)

    assert with_limiter(redis_url, 0.1, 1, use) == [None, 10]  # one token per 10 s


def test_the_bucket_refills_with_time(redis_url: str) -> None:
    async def use(limiter: RateLimiter) -> None:
        assert await outcomes(limiter, "dddddddddddd", 3) == [None, None, 1]
        await asyncio.sleep(0.12)  # 20 a second: two tokens back, no more than the burst
        assert await outcomes(limiter, "dddddddddddd", 3) == [None, None, 1]

    with_limiter(redis_url, 20, 2, use)


def test_concurrent_requests_never_take_the_same_token(redis_url: str) -> None:
    async def use(limiter: RateLimiter) -> list[BaseException | None]:
        return await asyncio.gather(*(limiter.take("eeeeeeeeeeee") for _ in range(60)), return_exceptions=True)

    answers = with_limiter(redis_url, 0.01, 10, use)
    assert answers.count(None) == 10
    assert all(isinstance(a, RateLimited) for a in answers if a is not None)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_with_redis_down_requests_pass_and_a_warning_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    closed = f"redis://127.0.0.1:{free_port()}/0"
    clock = Clock()
    before = RATE_LIMIT_UNCHECKED._value.get()

    async def use(limiter: RateLimiter) -> list[int | None]:
        answers = []
        for _ in range(5):  # Redis asked again once per retry_seconds: each time refused, each time passing
            started = time.perf_counter()
            answers += await outcomes(limiter, "ffffffffffff", 10)
            assert time.perf_counter() - started < 0.5
            clock.now += 1.0
        return answers

    with caplog.at_level(logging.WARNING, logger="backend.services.rate_limit"):
        answers = with_limiter(closed, 1, 1, use, clock=clock, retry_seconds=1.0, warn_seconds=60.0)
    assert answers == [None] * 50
    warnings = [r for r in caplog.records if "rate limits" in r.getMessage()]
    assert len(warnings) == 1 and "pass unchecked" in warnings[0].getMessage()
    assert RATE_LIMIT_UNCHECKED._value.get() - before == 50
