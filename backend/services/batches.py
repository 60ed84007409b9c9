"""Batches of any model kind: submission (record first, then send `batches.score`), the poll view built from our
own record (Redis while it lives, then the database), and the listing."""

from __future__ import annotations

import logging
import re
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import redis
from kombu.exceptions import OperationalError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from backend.core.config import Settings
from backend.core.errors import DependencyUnavailable, InvalidRequest, NotFound, QueueFull, TooLarge
from backend.core.metrics import BATCHES_SUBMITTED
from backend.db.recorder import Recorder
from backend.db.records import get_batch_job, list_batch_jobs
from backend.predictions.entry import Predictions, outcome_of
from backend.schemas.batches import (
    FINAL_STATUSES,
    PENDING,
    BatchAccepted,
    BatchProgress,
    BatchResultItem,
    BatchRowError,
    BatchStatusResponse,
    BatchSummary,
)
from backend.schemas.pages import Page, Position
from backend.services.keys import ANYONE, Principal
from backend.stores.batches import BatchRecord, BatchStore
from backend.tasks.batches import score_batch

log = logging.getLogger(__name__)

# Rough service times for `estimated_seconds`: queueing plus per-row scoring on one worker.
SECONDS_PER_BATCH = 0.02
SECONDS_PER_ROW = 0.0005
_BATCH_ID = re.compile(r"[0-9a-f]{32}")


def submit_batch(
    *,
    store: BatchStore,
    predictions: Predictions,
    recorder: Recorder | None,
    items: list[Any],
    model: str,
    request_id: str,
    settings: Settings,
    owner: str | None = None,
) -> BatchAccepted:
    """Rows are validated by the worker, each on its own: one bad row does not refuse the batch. The entry's
    `prepare_batch` turns the items into the model's rows at submission (congestion: read from the stored
    readings now); the rows it refuses are stored as their errors before the task runs."""
    served, _ = predictions.model(model)  # an unknown model: ModelNotFound (404) before anything is recorded
    _check_size(items, settings)
    items, refused = predictions.prepare_batch(model, items)
    batch_id = uuid.uuid4().hex
    try:
        active = store.create(batch_id, items, model, request_id, settings.max_pending_batches, owner, served.version)
    except redis.RedisError as exc:
        raise DependencyUnavailable("redis", "cannot record the batch") from exc
    except TypeError as exc:  # the record could not be encoded; nothing was written
        raise _unstorable(items) from exc
    if active is None:
        raise QueueFull(
            f"{settings.max_pending_batches} batches are already queued or running; retry later",
            retry_after_seconds=max(1, round(settings.max_pending_batches * SECONDS_PER_BATCH)),
        )
    try:
        if refused:
            store.save_outcomes(batch_id, {i: outcome_of(problem) for i, problem in refused.items()})
        score_batch.apply_async(args=[batch_id], task_id=batch_id, headers={"request_id": request_id})
    except (OperationalError, redis.RedisError, OSError) as exc:
        try:
            store.discard(batch_id)
        except redis.RedisError:
            pass
        raise DependencyUnavailable("redis", "cannot queue the batch on the broker") from exc
    BATCHES_SUBMITTED.labels(model).inc()
    log.info("batch %s accepted: %d rows", batch_id, len(items), extra={"batch_id": batch_id})
    if recorder is not None:
        job = {"model_name": model, "status": PENDING, "total": len(items), "created_at": datetime.now(UTC),
               "request_id": request_id, "owner": owner}  # fmt: skip
        recorder.record("batch_job", {"batch_id": batch_id, **job})
    return BatchAccepted(
        batch_id=batch_id,
        status="pending",
        total=len(items),
        poll_url=f"/api/predict/batch/{batch_id}/results",
        estimated_seconds=round(active * SECONDS_PER_BATCH + len(items) * SECONDS_PER_ROW, 3),
    )


def _check_size(items: list[Any], settings: Settings) -> None:
    if not items:
        raise InvalidRequest("a batch holds at least 1 row; got 0", details=[{"field": "items"}])
    if len(items) > settings.batch_max_rows:
        raise TooLarge(
            f"a batch holds at most {settings.batch_max_rows} rows; got {len(items)}",
            details=[{"field": "items", "max_rows": settings.batch_max_rows, "got": len(items)}],
        )


def _unstorable(items: list[Any]) -> InvalidRequest:
    """The standard-json parse of a body accepts integers of any size; the batch record (orjson) cannot."""
    for index, item in enumerate(items):
        try:
            orjson.dumps(item)
        except TypeError as exc:
            return InvalidRequest(f"items[{index}] cannot be stored: {exc}", details=[{"field": f"items[{index}]"}])
    return InvalidRequest("the items cannot be stored", details=[{"field": "items"}])


def batch_status(
    *,
    store: BatchStore,
    sessions: sessionmaker[Session] | None,
    batch_id: str,
    settings: Settings,
    viewer: Principal = ANYONE,
) -> BatchStatusResponse:
    """From the Redis record while it lives; from the database once Redis has expired it (or is down). A key
    reads its own batches; another key's only with the `read` scope."""
    if not _BATCH_ID.fullmatch(batch_id):  # not an id this API issues (and never another Redis key's suffix)
        raise NotFound(f"no batch {batch_id[:40]!r}: batch ids are the 32 hexadecimal digits the API answered")
    redis_error: redis.RedisError | None = None
    try:
        record = store.get(batch_id)
    except redis.RedisError as exc:
        record, redis_error = None, exc
    if record is not None:
        _check_viewer(viewer, record.owner, batch_id)
        return _from_redis(store, record)
    stored = _from_database(sessions, batch_id)
    if stored is not None:
        _check_viewer(viewer, stored[1], batch_id)
        return stored[0]
    if redis_error is not None:
        raise DependencyUnavailable("redis", "cannot read the batch") from redis_error
    hours = settings.batch_result_ttl_seconds / 3600
    raise NotFound(
        f"no batch {batch_id!r}: it was never submitted, or its results expired ({hours:g} h after submission)"
    )


def _check_viewer(viewer: Principal, owner: str | None, batch_id: str) -> None:
    if owner != viewer.key_id:
        viewer.demand("read", f"batch {batch_id} was submitted by another API key: reading it needs the 'read' scope")


def _from_redis(store: BatchStore, record: BatchRecord) -> BatchStatusResponse:
    response = BatchStatusResponse(
        batch_id=record.batch_id,
        status=record.status,
        progress=BatchProgress(done=min(record.done, record.total), total=record.total),
        model=record.model,
        created_at=from_epoch(record.created_at),
        started_at=from_epoch(record.started_at),
        finished_at=from_epoch(record.finished_at),
        error=record.error,
    )
    if record.is_final:
        outcomes = sorted(store.outcomes(record.batch_id).items())
        response.results = [BatchResultItem(**o, index=i) for i, o in outcomes if "error" not in o]
        response.errors = [
            BatchRowError(index=i, message=o["error"], details=o.get("details", []))
            for i, o in outcomes
            if "error" in o
        ]
    return response


def _from_database(
    sessions: sessionmaker[Session] | None, batch_id: str
) -> tuple[BatchStatusResponse, str | None] | None:
    """The batch as recorded, and the id of the key that submitted it."""
    if sessions is None:
        return None
    try:
        with sessions() as session:
            job = get_batch_job(session, batch_id=batch_id)
            if job is None:
                return None
            response = BatchStatusResponse(
                batch_id=job.id,
                status=job.status,
                progress=BatchProgress(done=job.done, total=job.total),
                model=job.model_name,
                created_at=job.created_at,
                started_at=job.started_at,
                finished_at=job.finished_at,
                error=job.error,
            )
            if job.status in FINAL_STATUSES:
                response.results = [
                    BatchResultItem(**(r.output or {}), index=r.row_index) for r in job.rows if r.error is None
                ]
                response.errors = [
                    BatchRowError(index=r.row_index, message=r.error, details=r.details or [])
                    for r in job.rows
                    if r.error is not None
                ]
            return response, job.owner
    except SQLAlchemyError as exc:
        log.warning("batch %s: database lookup failed: %s", batch_id, exc)
        return None


def from_epoch(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def list_batches(
    *, session: Session, page: int, size: int, status: str | None, cursor: str | None = None
) -> Page[BatchSummary]:
    at = Position.of("batches", page=page, size=size, cursor=cursor, tie=str)
    found = list_batch_jobs(session, size=size, offset=at.offset, after=at.after, count_limit=at.count_limit,
                            status=status)  # fmt: skip
    last = found.items[-1] if found.more else None
    return Page[BatchSummary].build(
        items=[BatchSummary.model_validate(job, from_attributes=True) for job in found.items],
        total=found.total, total_exact=found.total_exact, page=at.page, size=size,
        next=None if last is None else at.cursor_after((last.created_at, last.id)),
    )  # fmt: skip
