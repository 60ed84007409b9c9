"""The live feed: readings consumed from a Redis Stream by one consumer group, stored through the same `ingest`
as the REST route, and acknowledged only after the database commit. A consumer killed between reading and
acknowledging leaves its messages pending: it reads them again when it restarts (same consumer name), and another
consumer claims them after `FEED_CLAIM_IDLE_SECONDS`. Run: `python -m backend.services.feed`.

Another source (Kafka, MQTT) plugs in at the same point: a consumer that calls `ingest(...)` with the decoded
readings and commits its offset (Kafka) or acknowledges (MQTT QoS 1) after it returns.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import time
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
import redis

from backend.core.config import Settings, get_settings
from backend.core.errors import DependencyUnavailable
from backend.core.logging import configure_logging
from backend.core.redis import sync_redis
from backend.db.session import make_engine, session_factory
from backend.services.readings import SensorDirectory, ingest

log = logging.getLogger(__name__)
FIELD = b"reading"


def stream_key(settings: Settings) -> str:
    return f"{settings.key_prefix}readings:stream"


def heartbeat_key(settings: Settings) -> str:
    return f"{settings.key_prefix}readings:feed:heartbeat"


def publish(client: redis.Redis, stream: str, readings: Iterable[Any], max_length: int = 1_000_000) -> int:
    """One message per reading (as a road-side system sends them); the stream is trimmed to about `max_length`."""
    pipe = client.pipeline(transaction=False)
    count = 0
    for reading in readings:
        pipe.xadd(stream, {FIELD: orjson.dumps(reading)}, maxlen=max_length, approximate=True)
        count += 1
    pipe.execute()
    return count


def feed_lag_seconds(client: redis.Redis, stream: str, group: str) -> float:
    """Age of the oldest message not yet acknowledged (pending, or delivered to nobody yet); 0 when none."""
    oldest: bytes | None = None
    try:
        pending = client.xpending(stream, group)
        if pending["pending"]:
            oldest = pending["min"]
        groups = {g["name"]: g for g in client.xinfo_groups(stream)}
    except redis.ResponseError:  # no stream or no group yet
        return 0.0
    info = groups.get(group.encode()) or groups.get(group)
    if oldest is None and info is not None:
        undelivered = client.xrange(stream, min=f"({info['last-delivered-id'].decode()}", count=1)
        oldest = undelivered[0][0] if undelivered else None
    if oldest is None:
        return 0.0
    millis = int(oldest.split(b"-")[0])
    return max(0.0, time.time() - millis / 1000)


class ReadingsConsumer:
    def __init__(self, settings: Settings, client: redis.Redis, consumer: str | None = None) -> None:
        self.settings = settings
        self.client = client
        self.stream = stream_key(settings)
        self.group = settings.feed_group
        self.consumer = consumer or settings.feed_consumer or f"{socket.gethostname()}-feed"
        self.engine = make_engine(settings.database_url)
        self.sessions = session_factory(self.engine)
        self.sensors = SensorDirectory(self.sessions)

    def ensure_group(self) -> None:
        try:
            self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def _read(self, start: str, block_ms: int | None) -> list[tuple[bytes, dict[bytes, bytes]]]:
        answer = self.client.xreadgroup(
            self.group, self.consumer, {self.stream: start}, count=self.settings.feed_batch, block=block_ms
        )
        return answer[0][1] if answer else []

    def step(self, block_ms: int = 500) -> int:
        """Store one batch of messages: this consumer's pending ones first (delivered before a crash), then
        others' long-idle ones, then new ones. Returns how many messages were handled."""
        self.client.set(heartbeat_key(self.settings), time.time(), ex=max(5, 3 * block_ms // 1000))
        messages = self._live(self._read("0", None))
        if not messages:
            claimed = self.client.xautoclaim(
                self.stream, self.group, self.consumer, int(self.settings.feed_claim_idle_seconds * 1000),
                count=self.settings.feed_batch,
            )  # fmt: skip
            messages = self._live(claimed[1])
        if not messages:
            messages = self._read(">", block_ms)
        if not messages:
            return 0
        self._store(messages)
        return len(messages)

    def _live(self, messages: list[tuple[bytes, dict[bytes, bytes]]]) -> list[tuple[bytes, dict[bytes, bytes]]]:
        """Messages still in the stream; pending ones it trimmed away (no fields left) are acknowledged."""
        gone = [message_id for message_id, fields in messages if not fields]
        if gone:
            self.client.xack(self.stream, self.group, *gone)
        return [m for m in messages if m[1]]

    def _store(self, messages: Sequence[tuple[bytes, dict[bytes, bytes]]]) -> None:
        readings: list[Any] = []
        for _, fields in messages:
            try:
                readings.append(orjson.loads(fields.get(FIELD, b"null")))
            except orjson.JSONDecodeError:
                readings.append(None)  # refused (and counted) by ingest like any malformed reading
        outcome = ingest(self.sessions, self.sensors, readings, source="stream")
        for rejected in outcome.rejected[:5]:
            log.warning("feed: refused message %s: %s", messages[rejected["index"]][0].decode(), rejected["message"])
        self.client.xack(self.stream, self.group, *[message_id for message_id, _ in messages])

    def run(self, stopping: list[str]) -> None:
        self.ensure_group()
        log.info("feed: consuming %s as %s/%s", self.stream, self.group, self.consumer)
        while not stopping:
            try:
                self.step()
            except (redis.RedisError, DependencyUnavailable) as exc:
                log.warning("feed: %s; retrying in 1 s (unacknowledged messages stay pending)", exc)
                time.sleep(1)
                try:
                    self.ensure_group()
                except redis.RedisError:
                    pass

    def close(self) -> None:
        self.engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backend.services.feed", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 0 if a consumer wrote its heartbeat lately")
    args = parser.parse_args(argv)
    settings = get_settings()
    if args.check:
        beat = sync_redis(settings.redis_url, settings).get(heartbeat_key(settings))
        print("feed consumer alive" if beat else "no feed consumer heartbeat")
        return 0 if beat else 1
    configure_logging(settings.log_level)
    stopping: list[str] = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append("SIGTERM"))
    signal.signal(signal.SIGINT, lambda *_: stopping.append("SIGINT"))
    # Blocking reads outlast the service's short Redis timeout.
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=2)
    consumer = ReadingsConsumer(settings, client)
    try:
        consumer.run(stopping)
    finally:
        consumer.close()
    log.info("feed: stopped (%s), pid %d", stopping[0] if stopping else "error", os.getpid())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
