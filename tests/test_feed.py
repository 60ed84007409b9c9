"""The live feed: readings from a Redis Stream stored once, acknowledged after the commit, never lost when the
consumer dies (a real `python -m backend.services.feed` process killed with SIGKILL, and a consumer dying mid-batch)."""

from __future__ import annotations

import os
import signal
from datetime import UTC, datetime, timedelta

import pytest
import redis

from backend.core.config import Settings
from backend.db.models import Sensor
from backend.db.session import make_engine, session_factory
from backend.dev.processes import wait_until
from backend.services.feed import ReadingsConsumer, feed_lag_seconds, publish, stream_key
from tests.fixtures.scratch_db import stored_readings
from tests.fixtures.stack import Stack
from tests.fixtures.traffic import flat

pytestmark = pytest.mark.stack


def _register(database_url: str, *sensors: str) -> None:
    engine = make_engine(database_url)
    with session_factory(engine)() as session:
        session.add_all([Sensor(sensor_id=s, latitude=34.0, longitude=-118.0) for s in sensors])
        session.commit()
    engine.dispose()


def _readings(count: int, sensor: str = "s1") -> list[dict]:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    return [flat(sensor, start + timedelta(minutes=5 * i), 50.0 + i % 10) for i in range(count)]


def test_readings_published_while_the_consumer_is_dead_are_stored_once_after_it_restarts(own_stack: Stack) -> None:
    env = own_stack.env
    _register(env["DATABASE_URL"], "s1")
    client = redis.Redis.from_url(env["REDIS_URL"])
    settings = Settings(key_prefix=env["KEY_PREFIX"], redis_url=env["REDIS_URL"])
    stream = stream_key(settings)
    feed = own_stack.start_feed(FEED_CONSUMER="feed-a")
    publish(client, stream, _readings(10))
    assert wait_until(lambda: stored_readings(env["DATABASE_URL"]) == 10, timeout=15)

    os.killpg(feed.pid, signal.SIGKILL)
    feed.wait(10)
    later = _readings(40)[10:]
    publish(client, stream, later + later[:5])  # 5 of them sent twice
    assert feed_lag_seconds(client, stream, settings.feed_group) >= 0
    assert stored_readings(env["DATABASE_URL"]) == 10  # nobody consumes

    own_stack.respawn("feed")
    assert wait_until(lambda: stored_readings(env["DATABASE_URL"]) == 40, timeout=15)
    assert wait_until(lambda: client.xpending(stream, settings.feed_group)["pending"] == 0, timeout=10)
    assert feed_lag_seconds(client, stream, settings.feed_group) == 0.0


def test_messages_read_but_not_acknowledged_are_stored_by_the_restarted_consumer(
    redis_url: str, database_url: str
) -> None:
    _register(database_url, "s1")
    settings = Settings(
        redis_url=redis_url, database_url=database_url, key_prefix=f"feed-{os.urandom(4).hex()}:", feed_batch=50
    )
    client = redis.Redis.from_url(redis_url)
    dying = ReadingsConsumer(settings, client, consumer="c1")
    dying.ensure_group()
    publish(client, stream_key(settings), [*_readings(30), {"sensor_id": "s1", "timestamp": "soon"}])
    taken = dying._read(">", None)  # delivered to c1, which dies before storing them
    assert len(taken) == 31 and stored_readings(database_url) == 0
    dying.close()

    restarted = ReadingsConsumer(settings, client, consumer="c1")
    try:
        assert restarted.step(block_ms=10) == 31  # its own pending messages first
        assert restarted.step(block_ms=10) == 0
        assert stored_readings(database_url) == 30  # the malformed one is refused (and acknowledged), the rest stored
        assert client.xpending(stream_key(settings), settings.feed_group)["pending"] == 0
    finally:
        restarted.close()
        client.delete(stream_key(settings))
