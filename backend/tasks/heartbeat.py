"""Worker liveness without asking the workers: each worker child adds itself to a Redis sorted set every few
seconds (score: the time), from a thread of its own, so a child busy with a long chunk still beats. /health
reads the set with one command; a Celery `control.ping` per health call took broker connections from the
API's pool and, under a few dozen concurrent calls, locked batch submission up."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

import redis

log = logging.getLogger(__name__)

BEAT_SECONDS = 2.0
# A worker not seen for this long is gone (a child killed, a machine down): five missed beats.
ALIVE_SECONDS = 10.0


def workers_key(prefix: str) -> str:
    return f"{prefix}workers:alive"


class WorkerHeartbeat(threading.Thread):
    def __init__(self, client: redis.Redis, prefix: str, every_seconds: float = BEAT_SECONDS) -> None:
        super().__init__(name="worker-heartbeat", daemon=True)
        self.client = client
        self.key = workers_key(prefix)
        self.member = f"{socket.gethostname()}:{os.getpid()}"
        self.every_seconds = every_seconds
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                self.client.zadd(self.key, {self.member: time.time()})
            except redis.RedisError as exc:  # Redis away: the worker is reported down until it returns
                log.warning("worker heartbeat not written: %s", exc)
            self.stopped.wait(self.every_seconds)

    def stop(self) -> None:
        self.stopped.set()
        try:
            self.client.zrem(self.key, self.member)
        except redis.RedisError:
            pass


def alive_workers(client: redis.Redis, prefix: str, now: float | None = None) -> list[str]:
    """Worker children that beat within ALIVE_SECONDS; the older entries are dropped."""
    now = time.time() if now is None else now
    pipe = client.pipeline()
    pipe.zremrangebyscore(workers_key(prefix), "-inf", now - ALIVE_SECONDS)
    pipe.zrange(workers_key(prefix), 0, -1)
    _, members = pipe.execute()
    return sorted(m.decode() for m in members)
