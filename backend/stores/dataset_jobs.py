"""The Redis record of a dataset-scoring job: its chunks counted once, final once.

Redis keys (expire after the result TTL):
- `<prefix>dsjob:<job>`              hash: dataset_id, model, status, total, chunk_rows, chunks, chunks_done, done,
                                     created_at, started_at, finished_at, error, evaluation (JSON)
- `<prefix>dsjob:<job>:chunks`       hash chunk -> rows; HSETNX, so a redelivered chunk is counted once
- `<prefix>dsjob:<job>:deliveries`   hash chunk -> deliveries of its task
- `<prefix>dataset:<id>:running`     the job now running for a dataset (at most one)
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson
import redis

from backend.schemas.batches import FAILURE, PARTIAL, PROCESSING, SUCCESS

CANCELLED = "cancelled"
JOB_FINAL_STATUSES = frozenset({SUCCESS, PARTIAL, FAILURE, CANCELLED})

# Atomically: refuse when the dataset has a job that is not final, else record the job and mark it running.
_CREATE = """
local running, record = KEYS[1], KEYS[2]
local current = redis.call('GET', running)
if current then
  local status = redis.call('HGET', ARGV[1] .. 'dsjob:' .. current, 'status')
  if status == 'pending' or status == 'processing' then return current end
end
redis.call('SET', running, ARGV[2], 'EX', ARGV[3])
redis.call('HSET', record, 'dataset_id', ARGV[4], 'model', ARGV[5], 'status', 'pending', 'total', ARGV[6],
           'chunk_rows', ARGV[7], 'chunks', ARGV[8], 'chunks_done', 0, 'done', 0, 'created_at', ARGV[9],
           'model_version', ARGV[10])
redis.call('EXPIRE', record, ARGV[3])
return ''
"""
# Count a chunk once: (newly counted, chunks done).
_CHUNK_DONE = """
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 1 then
  redis.call('HINCRBY', KEYS[1], 'done', ARGV[2])
  redis.call('EXPIRE', KEYS[2], ARGV[3])
  return {1, redis.call('HINCRBY', KEYS[1], 'chunks_done', 1)}
end
return {0, tonumber(redis.call('HGET', KEYS[1], 'chunks_done'))}
"""
# Final once: a job already final (cancelled, or finished by another delivery) keeps its status.
_FINISH = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status or status == 'success' or status == 'partial' or status == 'failure' or status == 'cancelled' then
  return 0
end
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'finished_at', ARGV[2], 'error', ARGV[3], 'evaluation', ARGV[5])
if redis.call('GET', KEYS[2]) == ARGV[4] then redis.call('DEL', KEYS[2]) end
return 1
"""


@dataclass(frozen=True)
class JobRecord:
    job_id: str
    dataset_id: str
    model: str
    status: str
    total: int
    done: int
    chunk_rows: int
    chunks: int
    chunks_done: int
    created_at: float
    started_at: float | None
    finished_at: float | None
    error: str | None
    evaluation: dict[str, Any] | None
    # The version the job started under: every chunk is scored by it even if the champion moves meanwhile.
    model_version: str | None = None

    @property
    def is_final(self) -> bool:
        return self.status in JOB_FINAL_STATUSES

    def chunk_bounds(self, chunk: int) -> tuple[int, int]:
        start = chunk * self.chunk_rows
        return start, min(self.total, start + self.chunk_rows)


class DatasetJobStore:
    def __init__(self, client: redis.Redis, prefix: str, ttl_seconds: int) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl = ttl_seconds
        self._create = client.register_script(_CREATE)
        self._chunk_done = client.register_script(_CHUNK_DONE)
        self._finish = client.register_script(_FINISH)

    def _key(self, job_id: str, part: str = "") -> str:
        return f"{self.prefix}dsjob:{job_id}{part}"

    def _running_key(self, dataset_id: str) -> str:
        return f"{self.prefix}dataset:{dataset_id}:running"

    def create(
        self, job_id: str, dataset_id: str, model: str, total: int, chunk_rows: int, model_version: str | None = None
    ) -> str | None:
        """Record a job; None, or the id of the job already running for the dataset (nothing recorded then)."""
        chunks = -(-total // chunk_rows)
        current = self._create(
            keys=[self._running_key(dataset_id), self._key(job_id)],
            args=[
                self.prefix,
                job_id,
                self.ttl,
                dataset_id,
                model,
                total,
                chunk_rows,
                chunks,
                time.time(),
                model_version or "",
            ],  # fmt: skip
        )
        return current.decode() if current else None

    def discard(self, job_id: str, dataset_id: str) -> None:
        """Forget a job whose tasks could not be queued."""
        self.client.delete(self._key(job_id), self._running_key(dataset_id))

    def get(self, job_id: str) -> JobRecord | None:
        fields = self.client.hgetall(self._key(job_id))
        if not fields:
            return None
        text = {k.decode(): v.decode() for k, v in fields.items()}
        evaluation = text.get("evaluation")
        return JobRecord(
            job_id=job_id,
            dataset_id=text["dataset_id"],
            model=text["model"],
            status=text["status"],
            total=int(text["total"]),
            done=int(text["done"]),
            chunk_rows=int(text["chunk_rows"]),
            chunks=int(text["chunks"]),
            chunks_done=int(text["chunks_done"]),
            created_at=float(text["created_at"]),
            started_at=float(text["started_at"]) if text.get("started_at") else None,
            finished_at=float(text["finished_at"]) if text.get("finished_at") else None,
            error=text.get("error") or None,
            evaluation=orjson.loads(evaluation) if evaluation else None,
            model_version=text.get("model_version") or None,
        )

    def running_job(self, dataset_id: str) -> str | None:
        value = self.client.get(self._running_key(dataset_id))
        return value.decode() if value else None

    def start_delivery(self, job_id: str, chunk: int) -> tuple[int, bool]:
        """Count this delivery of a chunk's task; (its delivery number, whether this started the job)."""
        pipe = self.client.pipeline()
        pipe.hincrby(self._key(job_id, ":deliveries"), str(chunk), 1)
        pipe.expire(self._key(job_id, ":deliveries"), self.ttl)
        pipe.hsetnx(self._key(job_id), "started_at", time.time())
        delivery, _, started = pipe.execute()
        if started:
            self.client.hset(self._key(job_id), "status", PROCESSING)
        return int(delivery), bool(started)

    def chunk_done(self, job_id: str, chunk: int, rows: int) -> int:
        """Count a scored chunk (once, whatever the deliveries); returns how many chunks are done."""
        _, done = self._chunk_done(keys=[self._key(job_id), self._key(job_id, ":chunks")], args=[chunk, rows, self.ttl])
        return int(done)

    def finish(
        self,
        job_id: str,
        dataset_id: str,
        status: str,
        error: str | None = None,
        evaluation: dict[str, Any] | None = None,
    ) -> bool:
        """Make the job final; False when it already was (cancelled meanwhile, or finished by another delivery)."""
        return bool(
            self._finish(
                keys=[self._key(job_id), self._running_key(dataset_id)],
                args=[status, time.time(), error or "", job_id, orjson.dumps(evaluation) if evaluation else b""],
            )
        )
