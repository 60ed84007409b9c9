"""Scoring a whole dataset: one job, its valid rows cut into chunks, each chunk a `datasets.score_chunk` task that
any worker may take. The rows and results are files (backend.stores.dataset_files); the job's progress is a Redis
record (backend.stores.dataset_jobs), mirrored into the database when the job starts and ends."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
from celery.exceptions import SoftTimeLimitExceeded

from backend.db.recorder import record_or_spill
from backend.ml.eclo.measures import rmse
from backend.schemas.batches import FAILURE, PARTIAL, PROCESSING, SUCCESS
from backend.stores.dataset_jobs import JobRecord
from backend.tasks.batches import GIVEN_BACK_FOR, BatchTask, redeliver
from backend.tasks.celery_app import celery_app

if TYPE_CHECKING:
    from backend.wiring import Resources

log = logging.getLogger(__name__)


@celery_app.task(name="datasets.score_chunk", bind=True, base=BatchTask)
def score_chunk(self: BatchTask, job_id: str, chunk: int) -> dict[str, Any]:
    assert self.resources is not None, "worker resources are opened by worker_process_init"
    try:
        return run_chunk(self.resources, job_id, chunk)
    except GIVEN_BACK_FOR as exc:
        raise redeliver(exc) from exc


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
            outcomes = resources.predictions.predict(record.model, [row for _, row, _ in rows],
                                                     version=record.model_version)  # fmt: skip
            lines = (orjson.dumps([index, o]) for (index, _, _), o in zip(rows, outcomes, strict=True))
            files.storage.put_if_absent(key, b"\n".join(lines) + b"\n")
        done = jobs.chunk_done(job_id, chunk, stop - start)
    except (SoftTimeLimitExceeded, *GIVEN_BACK_FOR):
        raise  # the message comes back (acks late, or given back by the task) and the next delivery resumes here
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
    constants = resources.registry.get(record.model, record.model_version).metadata.get("constants", {})
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
