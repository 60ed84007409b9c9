"""ECLO batch task: `eclo.score_batch` takes a batch id and scores the rows recorded under it."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import redis
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import setup_logging, worker_process_init
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from backend.core.config import get_settings
from backend.core.logging import configure_logging, request_id_var
from backend.core.redis import sync_redis
from backend.db import crud
from backend.db.session import make_engine, session_factory, session_scope
from backend.ml.predictor import EcloModel
from backend.ml.registry import get_registry
from backend.tasks.celery_app import celery_app
from backend.tasks.store import FAILURE, PARTIAL, PROCESSING, SCORE_BATCH_TASK, SUCCESS, BatchRecord, BatchStore

log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def _worker_store() -> BatchStore:
    settings = get_settings()
    return BatchStore.from_settings(sync_redis(settings.redis_url, settings), settings)


@lru_cache(maxsize=1)
def _worker_sessions() -> sessionmaker[Session]:
    return session_factory(make_engine(get_settings().database_url))


def _record_job(batch_id: str, rows: dict[int, dict[str, Any]] | None = None, **fields: Any) -> None:
    """Mirror the batch into the database; a database failure is logged, never fails the batch."""
    try:
        with session_scope(_worker_sessions()) as session:
            crud.upsert_batch_job(session, batch_id=batch_id, **fields)
            if rows is not None:
                crud.save_batch_rows(session, batch_id=batch_id, rows=[_row(i, o) for i, o in sorted(rows.items())])
    except SQLAlchemyError as exc:
        log.warning("batch %s: could not record it in the database: %s", batch_id, str(exc).splitlines()[0])


def _row(index: int, outcome: dict[str, Any]) -> dict[str, Any]:
    if "error" in outcome:
        return {"row_index": index, "error": outcome["error"], "details": outcome.get("details")}
    return {"row_index": index, **outcome}


def _finish(store: BatchStore, record: BatchRecord, status: str, error: str | None = None) -> None:
    store.finish(record.batch_id, status, error)
    outcomes = store.outcomes(record.batch_id)
    _record_job(
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
    )


def _worker_model(name: str) -> EcloModel:
    return get_registry(get_settings().model_dir, num_threads=1).get(name)


@setup_logging.connect
def _json_logs(**_: Any) -> None:
    """Celery leaves the logging set-up to this handler: the same JSON lines as the API."""
    configure_logging(get_settings().log_level)


@worker_process_init.connect
def _load_models_in_child(**_: Any) -> None:
    """Boosters are loaded after the fork, in each child: LightGBM's OpenMP state does not survive fork."""
    get_registry(get_settings().model_dir, num_threads=1).load()


@celery_app.task(name=SCORE_BATCH_TASK, bind=True)
def score_batch(self: Any, batch_id: str) -> dict[str, Any]:
    """Score every row of a batch, a chunk at a time; resumes where a killed delivery stopped."""
    settings = get_settings()
    store = _worker_store()
    record = store.get(batch_id)
    request_id_var.set(record.request_id if record is not None else self.request.get("request_id"))
    if record is None:
        log.warning("batch %s: no record (expired or never submitted); dropping the task", batch_id)
        return {"batch_id": batch_id, "status": "missing"}
    if record.is_final:
        return {"batch_id": batch_id, "status": record.status}
    delivery = store.start_delivery(batch_id)
    if delivery > settings.batch_max_deliveries:
        _finish(store, record, FAILURE, f"gave up after {settings.batch_max_deliveries} deliveries")
        return {"batch_id": batch_id, "status": FAILURE}
    _record_job(
        batch_id,
        model_name=record.model,
        status=PROCESSING,
        total=record.total,
        created_at=datetime.fromtimestamp(record.created_at, UTC),
        started_at=datetime.fromtimestamp(record.started_at or time.time(), UTC),
        request_id=record.request_id,
    )
    try:
        model = _worker_model(record.model)
        items = store.items(batch_id) or []
        done = store.done_indices(batch_id)
        todo = [i for i in range(len(items)) if i not in done]
        for start in range(0, len(todo), settings.batch_chunk_rows):
            chunk = todo[start : start + settings.batch_chunk_rows]
            scores = model.predict_batch([items[i] for i in chunk])
            outcomes: dict[int, dict[str, Any]] = {}
            for position, index in enumerate(chunk):
                if position in scores.results:
                    outcomes[index] = scores.results[position].to_dict()  # eclo, risk_level, model_version
                else:
                    error = scores.errors[position]
                    outcomes[index] = {"error": error.summary(), "details": [e.to_dict() for e in error.errors]}
            store.save_outcomes(batch_id, outcomes)
            self.update_state(state="PROGRESS", meta={"done": len(done) + start + len(chunk), "total": len(items)})
            if settings.batch_throttle_seconds:
                time.sleep(settings.batch_throttle_seconds)
    except SoftTimeLimitExceeded:
        _finish(store, record, FAILURE, f"timed out after {settings.batch_soft_time_limit_seconds} s")
        raise
    except redis.RedisError:
        # Redis is gone: so is the acknowledgement. The message returns after the visibility timeout and the
        # next delivery resumes from the rows already stored.
        raise
    except Exception as exc:
        _finish(store, record, FAILURE, f"{type(exc).__name__}: {exc}")
        raise
    outcomes = store.outcomes(batch_id)
    failed = sum(1 for o in outcomes.values() if "error" in o)
    status = SUCCESS if failed == 0 else (FAILURE if failed == len(outcomes) else PARTIAL)
    _finish(store, record, status, "every row failed validation" if status == FAILURE else None)
    log.info("batch %s %s: %d rows, %d invalid, delivery %d", batch_id, status, len(outcomes), failed, delivery,
             extra={"batch_id": batch_id})  # fmt: skip
    return {"batch_id": batch_id, "status": status, "done": len(outcomes), "total": record.total}
