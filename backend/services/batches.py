"""Batch submission (record first, then queue the task) and the poll view built from our own record."""

from __future__ import annotations

import uuid
from typing import Any

import redis
from celery import Celery
from kombu.exceptions import OperationalError

from backend.api.schemas import (
    BatchAccepted,
    BatchProgress,
    BatchResultItem,
    BatchRowError,
    BatchStatusResponse,
)
from backend.core.config import Settings
from backend.core.errors import BatchTooLarge, DependencyUnavailable, InvalidRequest, NotFound, QueueFull
from backend.tasks.store import SCORE_BATCH_TASK, BatchStore

# Rough service times for `estimated_seconds`: queueing plus per-row scoring on one worker.
SECONDS_PER_BATCH = 0.02
SECONDS_PER_ROW = 0.0005


def submit_batch(
    *, store: BatchStore, celery: Celery, items: list[Any], model: str, request_id: str, settings: Settings
) -> BatchAccepted:
    if not items:
        raise InvalidRequest("a batch holds at least 1 row; got 0", details=[{"field": "items"}])
    if len(items) > settings.batch_max_rows:
        raise BatchTooLarge(
            f"a batch holds at most {settings.batch_max_rows} rows; got {len(items)}",
            details=[{"field": "items", "max_rows": settings.batch_max_rows, "got": len(items)}],
        )
    batch_id = uuid.uuid4().hex
    try:
        active = store.create(batch_id, items, model, request_id, settings.max_pending_batches)
    except redis.RedisError as exc:
        raise DependencyUnavailable("redis", f"cannot record the batch ({exc})") from exc
    if active is None:
        raise QueueFull(
            f"{settings.max_pending_batches} batches are already queued or running; retry later",
            retry_after_seconds=max(1, round(settings.max_pending_batches * SECONDS_PER_BATCH)),
        )
    try:
        celery.send_task(SCORE_BATCH_TASK, args=[batch_id], task_id=batch_id, headers={"request_id": request_id})
    except (OperationalError, redis.RedisError, OSError) as exc:
        try:
            store.discard(batch_id)
        except redis.RedisError:
            pass
        raise DependencyUnavailable("redis", f"cannot queue the batch on the broker ({exc})") from exc
    return BatchAccepted(
        batch_id=batch_id,
        status="pending",
        total=len(items),
        poll_url=f"/api/predict/batch/{batch_id}/results",
        estimated_seconds=round(active * SECONDS_PER_BATCH + len(items) * SECONDS_PER_ROW, 3),
    )


def batch_status(*, store: BatchStore, batch_id: str, settings: Settings) -> BatchStatusResponse:
    try:
        record = store.get(batch_id)
    except redis.RedisError as exc:
        raise DependencyUnavailable("redis", f"cannot read the batch ({exc})") from exc
    if record is None:
        hours = settings.batch_result_ttl_seconds / 3600
        raise NotFound(
            f"no batch {batch_id!r}: it was never submitted, or its results expired ({hours:g} h after submission)"
        )
    response = BatchStatusResponse(
        batch_id=batch_id,
        status=record.status,  # type: ignore[arg-type]
        progress=BatchProgress(done=min(record.done, record.total), total=record.total),
        model=record.model,
        created_at=record.created_at,
        started_at=record.started_at,
        finished_at=record.finished_at,
        error=record.error,
    )
    if record.is_final:
        outcomes = store.outcomes(batch_id)
        response.results = [BatchResultItem(index=i, **o) for i, o in sorted(outcomes.items()) if "error" not in o]
        response.errors = [
            BatchRowError(index=i, message=o["error"], details=o.get("details", []))
            for i, o in sorted(outcomes.items())
            if "error" in o
        ]
    return response
