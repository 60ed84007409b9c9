"""Worker liveness from heartbeats in Redis: one command for /health, whatever the load."""

from __future__ import annotations

import time
import uuid

import redis

from backend.dev.processes import wait_until
from backend.services.health import check_workers
from backend.tasks.heartbeat import ALIVE_SECONDS, WorkerHeartbeat, alive_workers, workers_key


def test_fresh_beats_are_alive_and_old_ones_dropped(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    prefix = f"hb-{uuid.uuid4().hex[:6]}:"
    now = time.time()
    client.zadd(workers_key(prefix), {"a:1": now - 1, "b:2": now - ALIVE_SECONDS - 1})
    assert alive_workers(client, prefix, now) == ["a:1"]
    assert client.zcard(workers_key(prefix)) == 1  # the stale one is gone
    assert check_workers(client, prefix).status == "ok"
    down = check_workers(client, f"{prefix}none:")
    assert down.status == "down" and down.detail == f"no worker process seen in the last {ALIVE_SECONDS:.0f} s"


def test_a_heartbeat_thread_beats_until_stopped(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    prefix = f"hb-{uuid.uuid4().hex[:6]}:"
    beat = WorkerHeartbeat(client, prefix, every_seconds=0.05)
    beat.start()
    assert wait_until(lambda: alive_workers(client, prefix) == [beat.member], timeout=5)
    beat.stop()
    beat.join(2)
    assert alive_workers(client, prefix) == []
