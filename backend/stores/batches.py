"""The Redis record of every batch, whatever its model kind; the API writes it, the batch task fills it.

Celery answers PENDING for any id it never saw, so the API trusts this record, not Celery's state.

Keys (all expire after the result TTL):
- `<prefix>batch:<id>`        hash: status, total, model, request_id, owner (the submitting key's id),
                               created/started/finished, deliveries, error
- `<prefix>batch:<id>:items`  the submitted rows (JSON)
- `<prefix>batch:<id>:out`    hash index -> outcome JSON, written with HSETNX so a redelivered task never
                              replaces an answer already given (a batch is never scored twice differently)
- `<prefix>batches:active`    sorted set of pending/processing batch ids by submit time (back-pressure)
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson
import redis

from backend.core.config import Settings
from backend.schemas.batches import FINAL_STATUSES, PROCESSING

# Atomically: drop stale active entries, refuse when the active set is full, else record the batch.
_CREATE = """
local active, record, items = KEYS[1], KEYS[2], KEYS[3]
local now, stale_before, limit, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', active, '-inf', stale_before)
local pending = redis.call('ZCARD', active)
if pending >= limit then return -1 end
redis.call('ZADD', active, now, ARGV[5])
redis.call('HSET', record, 'status', 'pending', 'total', ARGV[6], 'model', ARGV[7], 'request_id', ARGV[8],
           'created_at', ARGV[1], 'deliveries', 0, 'owner', ARGV[10], 'model_version', ARGV[11])
redis.call('SET', items, ARGV[9], 'EX', ttl)
redis.call('EXPIRE', record, ttl)
return pending + 1
"""


@dataclass(frozen=True)
class BatchRecord:
    batch_id: str
    status: str
    total: int
    done: int
    model: str
    request_id: str
    created_at: float
    started_at: float | None
    finished_at: float | None
    deliveries: int
    error: str | None
    owner: str | None = None
    # The version the batch was submitted under: it is scored by it even if the champion moves meanwhile.
    model_version: str | None = None

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES


def _float(value: bytes | None) -> float | None:
    return float(value) if value else None


class BatchStore:
    def __init__(self, client: redis.Redis, prefix: str, ttl_seconds: int, stale_after_seconds: int) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl = ttl_seconds
        self.stale_after = stale_after_seconds
        self._create = client.register_script(_CREATE)

    @classmethod
    def from_settings(cls, client: redis.Redis, settings: Settings) -> BatchStore:
        # An active entry older than every delivery could have taken is stale: its batch was abandoned.
        stale_after = settings.batch_max_deliveries * (
            settings.celery_visibility_timeout_seconds + settings.batch_time_limit_seconds
        )
        return cls(client, settings.key_prefix, settings.batch_result_ttl_seconds, stale_after)

    def _record_key(self, batch_id: str) -> str:
        return f"{self.prefix}batch:{batch_id}"

    def _items_key(self, batch_id: str) -> str:
        return f"{self.prefix}batch:{batch_id}:items"

    def _out_key(self, batch_id: str) -> str:
        return f"{self.prefix}batch:{batch_id}:out"

    @property
    def _active_key(self) -> str:
        return f"{self.prefix}batches:active"

    @property
    def _stats_key(self) -> str:
        return f"{self.prefix}stats:batches_finished"

    def create(
        self,
        batch_id: str,
        items: list[Any],
        model: str,
        request_id: str,
        max_pending: int,
        owner: str | None = None,
        model_version: str | None = None,
    ) -> int | None:
        """Record a new batch; returns how many are active now, or None when `max_pending` are already."""
        now = time.time()
        active = self._create(
            keys=[self._active_key, self._record_key(batch_id), self._items_key(batch_id)],
            args=[
                now,
                now - self.stale_after,
                max_pending,
                self.ttl,
                batch_id,
                len(items),
                model,
                request_id,
                orjson.dumps(items),
                owner or "",
                model_version or "",
            ],
        )
        return None if int(active) < 0 else int(active)

    def discard(self, batch_id: str) -> None:
        """Forget a batch whose task could not be queued."""
        pipe = self.client.pipeline()
        pipe.zrem(self._active_key, batch_id)
        pipe.delete(self._record_key(batch_id), self._items_key(batch_id), self._out_key(batch_id))
        pipe.execute()

    def get(self, batch_id: str) -> BatchRecord | None:
        pipe = self.client.pipeline()
        pipe.hgetall(self._record_key(batch_id))
        pipe.hlen(self._out_key(batch_id))
        fields, done = pipe.execute()
        if not fields:
            return None
        text = {k.decode(): v for k, v in fields.items()}
        return BatchRecord(
            batch_id=batch_id,
            status=text["status"].decode(),
            total=int(text["total"]),
            done=int(done),
            model=text["model"].decode(),
            request_id=text.get("request_id", b"").decode(),
            created_at=float(text["created_at"]),
            started_at=_float(text.get("started_at")),
            finished_at=_float(text.get("finished_at")),
            deliveries=int(text.get("deliveries", 0)),
            error=text["error"].decode() if text.get("error") else None,
            owner=text["owner"].decode() if text.get("owner") else None,
            model_version=text["model_version"].decode() if text.get("model_version") else None,
        )

    def start_delivery(self, batch_id: str) -> int:
        """Mark the batch processing and count this delivery of its task; returns the delivery number."""
        key = self._record_key(batch_id)
        pipe = self.client.pipeline()
        pipe.hincrby(key, "deliveries", 1)
        pipe.hset(key, "status", PROCESSING)
        pipe.hsetnx(key, "started_at", time.time())
        return int(pipe.execute()[0])

    def items(self, batch_id: str) -> list[Any] | None:
        raw = self.client.get(self._items_key(batch_id))
        return None if raw is None else orjson.loads(raw)

    def done_indices(self, batch_id: str) -> set[int]:
        return {int(i) for i in self.client.hkeys(self._out_key(batch_id))}

    def save_outcomes(self, batch_id: str, outcomes: dict[int, dict[str, Any]]) -> None:
        key = self._out_key(batch_id)
        pipe = self.client.pipeline()
        for index, outcome in outcomes.items():
            pipe.hsetnx(key, str(index), orjson.dumps(outcome))
        pipe.expire(key, self.ttl)
        pipe.execute()

    def outcomes(self, batch_id: str) -> dict[int, dict[str, Any]]:
        raw = self.client.hgetall(self._out_key(batch_id))
        return {int(k): orjson.loads(v) for k, v in raw.items()}

    def finish(self, batch_id: str, status: str, error: str | None = None) -> None:
        key = self._record_key(batch_id)
        pipe = self.client.pipeline()
        pipe.hset(key, mapping={"status": status, "finished_at": time.time(), **({"error": error} if error else {})})
        pipe.zrem(self._active_key, batch_id)
        pipe.hincrby(self._stats_key, status, 1)
        for k in (key, self._items_key(batch_id), self._out_key(batch_id)):
            pipe.expire(k, self.ttl)
        pipe.execute()

    def active_ids(self) -> list[str]:
        return [member.decode() for member in self.client.zrange(self._active_key, 0, -1)]

    def last_sent(self, batch_id: str) -> float | None:
        """When reconciliation last re-sent the batch's task (None: never)."""
        return _float(self.client.hget(self._record_key(batch_id), "sent_at"))

    def mark_sent(self, batch_id: str, when: float) -> None:
        self.client.hset(self._record_key(batch_id), "sent_at", when)

    def batch_stats(self) -> tuple[dict[str, int], int]:
        """Batches finished so far by final status (all workers), and batches queued or running now."""
        pipe = self.client.pipeline()
        pipe.hgetall(self._stats_key)
        pipe.zcard(self._active_key)
        finished, active = pipe.execute()
        return {k.decode(): int(v) for k, v in finished.items()}, int(active)
