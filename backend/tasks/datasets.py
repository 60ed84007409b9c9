"""Scoring a whole dataset: one job, its valid rows cut into chunks, each chunk a `datasets.score_chunk` task that
any worker may take. The rows, the validation report and the results are files (backend.core.storage); the job's
progress is a Redis record, mirrored into the database when the job starts and ends.

Files of a dataset (`datasets/<id>/`):
- `source.csv`     the upload as it came
- `rows.jsonl`     one line per valid row: [row index in the file, the model's input, observed ECLO or null]
- `offsets.bin`    little-endian int64 byte offsets of each line of rows.jsonl, and its end: a chunk is one read
- `report.jsonl`   one validation problem per line: {row, column, problem, value}
- `jobs/<job>/chunk-<k>.jsonl`  [row index, outcome] per row of chunk k, written once (the first writer wins)

Redis keys (expire after the result TTL):
- `<prefix>dsjob:<job>`              hash: dataset_id, model, status, total, chunk_rows, chunks, chunks_done, done,
                                     created_at, started_at, finished_at, error, evaluation (JSON)
- `<prefix>dsjob:<job>:chunks`       hash chunk -> rows; HSETNX, so a redelivered chunk is counted once
- `<prefix>dsjob:<job>:deliveries`   hash chunk -> deliveries of its task
- `<prefix>dataset:<id>:running`     the job now running for a dataset (at most one)
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import redis
from celery.exceptions import SoftTimeLimitExceeded

from backend.core.storage import FileStorage
from backend.ml.measures import rmse
from backend.schemas.batches import FAILURE, PARTIAL, PROCESSING, SUCCESS
from backend.services.recorder import record_or_spill
from backend.tasks.batches import BatchTask, row_outcome
from backend.tasks.celery_app import celery_app

if TYPE_CHECKING:
    from backend.wiring import Resources

log = logging.getLogger(__name__)

CANCELLED = "cancelled"
JOB_FINAL_STATUSES = frozenset({SUCCESS, PARTIAL, FAILURE, CANCELLED})
_OFFSET = struct.Struct("<q")

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
           'chunk_rows', ARGV[7], 'chunks', ARGV[8], 'chunks_done', 0, 'done', 0, 'created_at', ARGV[9])
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

    def create(self, job_id: str, dataset_id: str, model: str, total: int, chunk_rows: int) -> str | None:
        """Record a job; None, or the id of the job already running for the dataset (nothing recorded then)."""
        chunks = -(-total // chunk_rows)
        current = self._create(
            keys=[self._running_key(dataset_id), self._key(job_id)],
            args=[self.prefix, job_id, self.ttl, dataset_id, model, total, chunk_rows, chunks, time.time()],
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


class DatasetFiles:
    """The file layout of datasets in a storage (see the module docstring)."""

    def __init__(self, storage: FileStorage) -> None:
        self.storage = storage

    @staticmethod
    def folder(dataset_id: str) -> str:
        return f"datasets/{dataset_id}"

    def source(self, dataset_id: str) -> str:
        return f"{self.folder(dataset_id)}/source.csv"

    def rows(self, dataset_id: str) -> str:
        return f"{self.folder(dataset_id)}/rows.jsonl"

    def offsets(self, dataset_id: str) -> str:
        return f"{self.folder(dataset_id)}/offsets.bin"

    def report(self, dataset_id: str) -> str:
        return f"{self.folder(dataset_id)}/report.jsonl"

    def chunk(self, dataset_id: str, job_id: str, chunk: int) -> str:
        return f"{self.folder(dataset_id)}/jobs/{job_id}/chunk-{chunk:06d}.jsonl"

    def read_rows(self, dataset_id: str, start: int, stop: int) -> list[tuple[int, dict[str, Any], float | None]]:
        """Valid rows `start` to `stop` (positions among the valid rows): one read of their byte range."""
        if stop <= start:
            return []
        with self.storage.open_read(self.offsets(dataset_id)) as offsets:
            offsets.seek(start * _OFFSET.size)
            (first,) = _OFFSET.unpack(offsets.read(_OFFSET.size))
            offsets.seek(stop * _OFFSET.size)
            (end,) = _OFFSET.unpack(offsets.read(_OFFSET.size))
        with self.storage.open_read(self.rows(dataset_id)) as rows:
            rows.seek(first)
            data = rows.read(end - first)
        return [tuple(orjson.loads(line)) for line in data.splitlines()]  # type: ignore[misc]

    def iter_rows(self, dataset_id: str) -> Iterator[tuple[int, dict[str, Any], float | None]]:
        with self.storage.open_read(self.rows(dataset_id)) as rows:
            for line in rows:
                yield tuple(orjson.loads(line))  # type: ignore[misc]

    def iter_results(self, dataset_id: str, job_id: str, chunks: int) -> Iterator[tuple[int, dict[str, Any]]]:
        """Every scored row of a job in file order: chunks hold consecutive valid rows."""
        for chunk in range(chunks):
            with self.storage.open_read(self.chunk(dataset_id, job_id, chunk)) as results:
                for line in results:
                    index, outcome = orjson.loads(line)
                    yield index, outcome

    def iter_report(self, dataset_id: str) -> Iterator[dict[str, Any]]:
        with self.storage.open_read(self.report(dataset_id)) as report:
            for line in report:
                yield orjson.loads(line)


@celery_app.task(name="datasets.score_chunk", bind=True, base=BatchTask)
def score_chunk(self: BatchTask, job_id: str, chunk: int) -> dict[str, Any]:
    assert self.resources is not None, "worker resources are opened by worker_process_init"
    return run_chunk(self.resources, job_id, chunk)


def run_chunk(resources: Resources, job_id: str, chunk: int) -> dict[str, Any]:
    """Score one chunk of a job (skipped when the job is final: cancelled or failed); the delivery that
    completes the last chunk finishes the job. Callable without Celery."""
    settings = resources.settings
    jobs, files = resources.dataset_jobs, resources.dataset_files
    record = jobs.get(job_id)
    if record is None or record.is_final:
        return {"job_id": job_id, "chunk": chunk, "status": "skipped"}
    delivery, started = jobs.start_delivery(job_id, chunk)
    if started:
        _mirror(resources, job_id, status=PROCESSING, started_at=datetime.now(UTC))
    if delivery > settings.batch_max_deliveries:
        _finish(resources, record, FAILURE, f"chunk {chunk} gave up after {settings.batch_max_deliveries} deliveries")
        return {"job_id": job_id, "chunk": chunk, "status": FAILURE}
    key = files.chunk(record.dataset_id, job_id, chunk)
    start, stop = record.chunk_bounds(chunk)
    try:
        if not files.storage.exists(key):
            rows = files.read_rows(record.dataset_id, start, stop)
            outcomes = resources.registry.get(record.model).predict_many([row for _, row, _ in rows])
            lines = (orjson.dumps([index, row_outcome(o)]) for (index, _, _), o in zip(rows, outcomes, strict=True))
            files.storage.put_if_absent(key, b"\n".join(lines) + b"\n")
        done = jobs.chunk_done(job_id, chunk, stop - start)
    except (SoftTimeLimitExceeded, redis.RedisError):
        raise  # the message comes back (acks late) and the next delivery resumes here
    except Exception as exc:
        current = jobs.get(job_id)
        if current is None or current.is_final:  # cancelled meanwhile (a deleted dataset's files are gone)
            return {"job_id": job_id, "chunk": chunk, "status": "skipped"}
        _finish(resources, record, FAILURE, f"chunk {chunk}: {type(exc).__name__}: {exc}")
        raise
    if done >= record.chunks:
        _finish(resources, record, SUCCESS)
    if settings.batch_throttle_seconds:
        time.sleep(settings.batch_throttle_seconds)
    return {"job_id": job_id, "chunk": chunk, "status": "scored", "delivery": delivery}


def _finish(resources: Resources, record: JobRecord, status: str, error: str | None = None) -> None:
    evaluation = None
    if status == SUCCESS:
        failed, evaluation = evaluate_job(resources, record)
        if failed:
            status = FAILURE if failed == record.total else PARTIAL
            error = f"{failed} rows failed validation at scoring"
    if not resources.dataset_jobs.finish(record.job_id, record.dataset_id, status, error, evaluation):
        return
    final = resources.dataset_jobs.get(record.job_id)
    _mirror(
        resources,
        record.job_id,
        status=status,
        error=error,
        done=final.done if final else record.done,
        finished_at=datetime.now(UTC),
        evaluation=evaluation,
    )
    log.info("dataset job %s %s: %d rows", record.job_id, status, record.total)


def evaluate_job(resources: Resources, record: JobRecord) -> tuple[int, dict[str, Any] | None]:
    """Rows that failed at scoring, and, when the file has outcomes, RMSLE against them beside two constants:
    the model's training mean (what a user without a model would guess) and the file's own mean (a bound no
    constant beats)."""
    files = resources.dataset_files
    predicted: dict[int, float] = {}
    failed = 0
    for index, outcome in files.iter_results(record.dataset_id, record.job_id, record.chunks):
        if "error" in outcome:
            failed += 1
        elif "eclo" in outcome:
            predicted[index] = float(outcome["eclo"])
    pairs = [(predicted[i], t) for i, _, t in files.iter_rows(record.dataset_id) if t is not None and i in predicted]
    if not pairs:
        return failed, None
    prediction, actual = (np.log1p(np.asarray(v, dtype=np.float64)) for v in zip(*pairs, strict=True))
    constants = resources.registry.get(record.model).metadata.get("constants", {})
    training_mean = float(constants.get("mean_log_eclo", float(np.mean(actual))))
    model_rmsle = rmse(prediction, actual)
    constant_rmsle = rmse(np.full_like(actual, training_mean), actual)
    return failed, {
        "rows": len(pairs),
        "rmsle": round(model_rmsle, 6),
        "constant_rmsle": round(constant_rmsle, 6),
        "constant_eclo": round(float(np.expm1(training_mean)), 4),
        "file_mean_rmsle": round(rmse(np.full_like(actual, float(np.mean(actual))), actual), 6),
        "ratio": round(model_rmsle / constant_rmsle, 4) if constant_rmsle else None,
    }


def _mirror(resources: Resources, job_id: str, **fields: Any) -> None:
    """The job's row in the database; what it refuses waits in the spill file (never fails the job)."""
    record_or_spill(resources.sessions, resources.spill, "dataset_job", {"job_id": job_id, **fields})
