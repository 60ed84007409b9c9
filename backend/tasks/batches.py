"""The one batch pipeline of every model kind: its Redis record and the Celery task `batches.score`.

The API (backend.services.batches) records a batch here, then sends `score_batch` by reference; a worker
takes the batch id, asks the registry for the batch's model by name and calls its `predict_many`, a chunk at a
time. Celery answers PENDING for any id it never saw, so the API trusts this record, not Celery's state.

Keys (all expire after the result TTL):
- `<prefix>batch:<id>`        hash: status, total, model, request_id, owner (the submitting key's id),
                               created/started/finished, deliveries, error
- `<prefix>batch:<id>:items`  the submitted rows (JSON)
- `<prefix>batch:<id>:out`    hash index -> outcome JSON, written with HSETNX so a redelivered task never
                              replaces an answer already given (a batch is never scored twice differently)
- `<prefix>batches:active`    sorted set of pending/processing batch ids by submit time (back-pressure)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

import orjson
import redis
from celery import Task
from celery.exceptions import SoftTimeLimitExceeded

from backend.core.config import Settings
from backend.core.logging import request_id_var
from backend.ml.errors import InvalidRow
from backend.schemas.batches import FAILURE, FINAL_STATUSES, PARTIAL, PROCESSING, SUCCESS
from backend.services.recorder import record_or_spill
from backend.tasks.celery_app import celery_app

if TYPE_CHECKING:
    from backend.wiring import Resources

log = logging.getLogger(__name__)

# Atomically: drop stale active entries, refuse when the active set is full, else record the batch.
_CREATE = """
local active, record, items = KEYS[1], KEYS[2], KEYS[3]
local now, stale_before, limit, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', active, '-inf', stale_before)
local pending = redis.call('ZCARD', active)
if pending >= limit then return -1 end
redis.call('ZADD', active, now, ARGV[5])
redis.call('HSET', record, 'status', 'pending', 'total', ARGV[6], 'model', ARGV[7], 'request_id', ARGV[8],
           'created_at', ARGV[1], 'deliveries', 0, 'owner', ARGV[10])
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
        self, batch_id: str, items: list[Any], model: str, request_id: str, max_pending: int, owner: str | None = None
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


class BatchTask(Task):
    """The batch task's dependencies, opened in each worker child after the fork (backend.tasks.worker)."""

    resources: ClassVar[Resources | None] = None


@celery_app.task(name="batches.score", bind=True, base=BatchTask)
def score_batch(self: BatchTask, batch_id: str) -> dict[str, Any]:
    """Score every row of a batch with its model; resumes where a killed delivery stopped."""
    assert self.resources is not None, "worker resources are opened by worker_process_init"
    request_id_var.set(self.request.get("request_id"))

    def report(done: int, total: int) -> None:
        self.update_state(state="PROGRESS", meta={"done": done, "total": total})

    return run_batch(self.resources, batch_id, report)


def run_batch(resources: Resources, batch_id: str, report: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """The body of `batches.score`, callable without Celery (tests call it directly)."""
    settings = resources.settings
    store = resources.batches
    record = store.get(batch_id)
    if record is None:
        log.warning("batch %s: no record (expired or never submitted); dropping the task", batch_id)
        return {"batch_id": batch_id, "status": "missing"}
    request_id_var.set(record.request_id or request_id_var.get())
    if record.is_final:
        return {"batch_id": batch_id, "status": record.status}
    delivery = store.start_delivery(batch_id)
    if delivery > settings.batch_max_deliveries:
        finish_batch(resources, record, FAILURE, f"gave up after {settings.batch_max_deliveries} deliveries")
        return {"batch_id": batch_id, "status": FAILURE}
    _mirror(
        resources,
        batch_id,
        model_name=record.model,
        status=PROCESSING,
        total=record.total,
        created_at=datetime.fromtimestamp(record.created_at, UTC),
        started_at=datetime.fromtimestamp(record.started_at or time.time(), UTC),
        request_id=record.request_id,
    )
    try:
        model = resources.registry.get(record.model)
        items = store.items(batch_id) or []
        done = store.done_indices(batch_id)
        todo = [i for i in range(len(items)) if i not in done]
        for start in range(0, len(todo), settings.batch_chunk_rows):
            chunk = todo[start : start + settings.batch_chunk_rows]
            outcomes = model.predict_many([items[i] for i in chunk])
            store.save_outcomes(batch_id, {i: row_outcome(o) for i, o in zip(chunk, outcomes, strict=True)})
            if report is not None:
                report(len(done) + start + len(chunk), len(items))
            if settings.batch_throttle_seconds:
                time.sleep(settings.batch_throttle_seconds)
    except SoftTimeLimitExceeded:
        finish_batch(resources, record, FAILURE, f"timed out after {settings.batch_soft_time_limit_seconds} s")
        raise
    except redis.RedisError:
        # Redis is gone: so is the acknowledgement. The message returns after the visibility timeout and the
        # next delivery resumes from the rows already stored.
        raise
    except Exception as exc:
        finish_batch(resources, record, FAILURE, f"{type(exc).__name__}: {exc}")
        raise
    outcomes = store.outcomes(batch_id)
    failed = sum(1 for o in outcomes.values() if "error" in o)
    status = SUCCESS if failed == 0 else (FAILURE if failed == len(outcomes) else PARTIAL)
    finish_batch(resources, record, status, "every row failed validation" if status == FAILURE else None)
    log.info("batch %s %s: %d rows, %d invalid, delivery %d", batch_id, status, len(outcomes), failed, delivery,
             extra={"batch_id": batch_id})  # fmt: skip
    return {"batch_id": batch_id, "status": status, "done": len(outcomes), "total": record.total}


def row_outcome(outcome: Any) -> dict[str, Any]:
    if isinstance(outcome, InvalidRow):
        return {"error": outcome.summary(), "details": [e.to_dict() for e in outcome.errors]}
    return outcome.to_dict()


def finish_batch(resources: Resources, record: BatchRecord, status: str, error: str | None = None) -> None:
    resources.batches.finish(record.batch_id, status, error)
    outcomes = resources.batches.outcomes(record.batch_id)
    _mirror(
        resources,
        record.batch_id,
        rows=outcomes,
        model_name=record.model,
        status=status,
        total=record.total,
        done=len(outcomes),
        created_at=datetime.fromtimestamp(record.created_at, UTC),
        finished_at=datetime.now(UTC),
        error=error,
        request_id=record.request_id,
        owner=record.owner,
    )


def _mirror(resources: Resources, batch_id: str, rows: dict[int, dict[str, Any]] | None = None, **fields: Any) -> None:
    """Mirror the batch into the database; what it refuses waits in the spill file (never fails the batch)."""
    payload = {"batch_id": batch_id, "fields": fields,
               "rows": None if rows is None else [_row(i, o) for i, o in sorted(rows.items())]}  # fmt: skip
    record_or_spill(resources.sessions, resources.spill, "batch_state", payload)


def _row(index: int, outcome: dict[str, Any]) -> dict[str, Any]:
    if "error" in outcome:
        return {"row_index": index, "error": outcome["error"], "details": outcome.get("details")}
    return {"row_index": index, "model_version": outcome.get("model_version"), "output": outcome}
