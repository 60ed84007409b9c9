"""The batch task `batches.score`, one pipeline for every model kind.

The API (backend.services.batches) records a batch in backend.stores.batches, then sends `score_batch` by
reference; a worker takes the batch id, asks the registry for the batch's model by name and calls its
`predict`, a chunk at a time (backend.predictions.entry: a row's outcome is the model's single answer).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

import redis
from celery import Task
from celery.exceptions import Reject, SoftTimeLimitExceeded

from backend.core.logging import request_id_var
from backend.core.storage import STORE_UNREACHABLE
from backend.db.recorder import record_or_spill
from backend.schemas.batches import FAILURE, PARTIAL, PROCESSING, SUCCESS
from backend.stores.batches import BatchRecord
from backend.tasks.celery_app import celery_app

if TYPE_CHECKING:
    from backend.wiring import Resources

log = logging.getLogger(__name__)
GIVE_BACK_PAUSE_SECONDS = 5.0
# Redis or the file store went away (a cut link, a restart): worth another delivery, not a failed batch or job.
GIVEN_BACK_FOR = (redis.RedisError, *STORE_UNREACHABLE)


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

    try:
        return run_batch(self.resources, batch_id, report)
    except GIVEN_BACK_FOR as exc:
        raise redeliver(exc) from exc


def redeliver(exc: Exception) -> Reject:
    """Redis (or the file store) went away mid-task, as behind a cut link: after a pause, the message goes back on
    its queue, not acknowledged as failed, and the next delivery resumes from what is stored. While Redis cannot be
    reached even for that, the message stays unacknowledged and returns after the visibility timeout. Each delivery
    counts toward BATCH_MAX_DELIVERIES: the pause keeps a short outage from using them all up at once."""
    log.warning("task given back for another delivery in %.0f s: %s: %s", GIVE_BACK_PAUSE_SECONDS,
                type(exc).__name__, exc)  # fmt: skip
    time.sleep(GIVE_BACK_PAUSE_SECONDS)
    return Reject(exc, requeue=True)


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
        resources.predictions.model(record.model, record.model_version)
        items = store.items(batch_id) or []
        done = store.done_indices(batch_id)
        todo = [i for i in range(len(items)) if i not in done]
        for start in range(0, len(todo), settings.batch_chunk_rows):
            chunk = todo[start : start + settings.batch_chunk_rows]
            outcomes = resources.predictions.predict(
                record.model, [items[i] for i in chunk], version=record.model_version
            )
            store.save_outcomes(batch_id, dict(zip(chunk, outcomes, strict=True)))
            if report is not None:
                report(len(done) + start + len(chunk), len(items))
            if settings.batch_throttle_seconds:
                time.sleep(settings.batch_throttle_seconds)
    except SoftTimeLimitExceeded:
        finish_batch(resources, record, FAILURE, f"timed out after {settings.batch_soft_time_limit_seconds} s")
        raise
    except GIVEN_BACK_FOR:
        raise  # the task gives its message back (redeliver); the next delivery resumes from the rows stored
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
