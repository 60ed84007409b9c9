"""`batches.reconcile`, run by Celery beat: batches that will never finish by themselves are re-queued or failed
with a reason, so no client polls "processing" for ever.

A batch is stuck once no delivery of its task could still be running or still come back: older than
`stuck_after` = the visibility timeout (a dead worker's message returns after it) plus the hard time limit.
- Redis holds its record, not final: its message was lost (a broker restarted without persistence, a purge).
  It is sent again while its deliveries are under BATCH_MAX_DELIVERIES (each re-send waits `stuck_after`
  again), and failed after that.
- Only the database knows it (Redis lost the record): nothing can score it any more; failed, saying why.
Dataset jobs the database holds as running but Redis has forgotten are failed the same way, and training jobs
whose process stopped beating for TRAINING_STALE_SECONDS (killed with their worker), their partial folder removed
when this host can reach it (in the shared DATA_DIR, or its own temporary folder); a trainer host also removes its
own before each training. No version is left in the storage: a training publishes only a whole one.
"""

from __future__ import annotations

import argparse
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError

from backend.core.config import get_settings
from backend.core.redis import sync_redis
from backend.db.lifecycle import fail_stale_training_jobs, stale_training_error
from backend.db.models import BatchJob, DatasetJob
from backend.db.session import session_scope
from backend.schemas.batches import FAILURE, PENDING, PROCESSING
from backend.tasks.batches import BatchTask, finish_batch, score_batch
from backend.tasks.celery_app import celery_app

if TYPE_CHECKING:
    from backend.wiring import Resources

log = logging.getLogger(__name__)

LOST = "lost: Redis no longer holds this work (restarted without persistence?); submit it again"


def stuck_after_seconds(resources: Resources) -> float:
    settings = resources.settings
    return float(settings.celery_visibility_timeout_seconds + settings.batch_time_limit_seconds)


@celery_app.task(name="batches.reconcile", bind=True, base=BatchTask)
def reconcile_task(self: BatchTask) -> dict[str, list[str]]:
    assert self.resources is not None, "worker resources are opened by worker_process_init"
    return reconcile(self.resources)


def reconcile(resources: Resources, now: float | None = None) -> dict[str, list[str]]:
    """One pass; returns what it did (ids by action)."""
    now = time.time() if now is None else now
    stuck_after = stuck_after_seconds(resources)
    done: dict[str, list[str]] = {"requeued": [], "failed": [], "lost": []}
    recorded = _running_in_database(resources, now - stuck_after)
    store, settings = resources.batches, resources.settings
    for batch_id in sorted(set(store.active_ids()) | set(recorded.get("batch", []))):
        record = store.get(batch_id)
        if record is None:
            if batch_id in recorded.get("batch", []):
                _mark_lost(resources, BatchJob, batch_id)
                done["lost"].append(batch_id)
            continue
        if record.is_final or now - (store.last_sent(batch_id) or record.created_at) < stuck_after:
            continue
        if record.deliveries >= settings.batch_max_deliveries:
            finish_batch(resources, record, FAILURE, f"stuck: no delivery finished after {record.deliveries}")
            done["failed"].append(batch_id)
        else:
            store.mark_sent(batch_id, now)
            score_batch.apply_async(args=[batch_id], task_id=batch_id, headers={"request_id": record.request_id})
            done["requeued"].append(batch_id)
    for job_id in recorded.get("dataset_job", []):
        if resources.dataset_jobs.get(job_id) is None:
            _mark_lost(resources, DatasetJob, job_id)
            done["lost"].append(job_id)
    done["training_failed"] = _fail_stale_training(resources)
    if any(done.values()):
        log.warning("reconcile: %s", done)
    resources.redis.set(last_pass_key(settings.key_prefix), now)
    return done


def _fail_stale_training(resources: Resources) -> list[str]:
    """Training jobs whose process stopped beating (killed with its worker), failed even if no one polls them."""
    seconds = resources.settings.training_stale_seconds
    try:
        with session_scope(resources.sessions) as session:
            failed = fail_stale_training_jobs(session, beaten_before=datetime.now(UTC) - timedelta(seconds=seconds),
                                              error=stale_training_error(seconds))  # fmt: skip
    except SQLAlchemyError as exc:
        log.warning("reconcile: training jobs not checked (%s)", type(exc).__name__)
        return []
    versions = resources.registry.versions
    for job_id, model_name in failed:
        if versions is not None:
            versions.discard(versions.partial_path(model_name, job_id))
    return [job_id for job_id, _ in failed]


def last_pass_key(prefix: str) -> str:
    return f"{prefix}reconcile:last_pass"


def main(argv: list[str] | None = None) -> int:
    """`python -m backend.tasks.reconcile --check`: exit 0 when a pass ran within three intervals (beat sends
    it, a worker runs it): the health check of compose's `beat` service."""
    parser = argparse.ArgumentParser(prog="python -m backend.tasks.reconcile", description=main.__doc__)
    parser.add_argument("--check", action="store_true", required=True)
    parser.parse_args(argv)
    settings = get_settings()
    raw = sync_redis(settings.redis_url, settings).get(last_pass_key(settings.key_prefix))
    age = None if raw is None else time.time() - float(raw)
    if age is None or age > 3 * settings.reconcile_interval_seconds + 30:
        print(f"no reconciliation pass {'yet' if age is None else f'for {age:.0f} s'}")
        return 1
    print(f"last reconciliation pass {age:.0f} s ago")
    return 0


def _running_in_database(resources: Resources, created_before: float) -> dict[str, list[str]]:
    """Ids of the batches and dataset jobs the database holds as pending or running, created before the time."""
    before = datetime.fromtimestamp(created_before, UTC)
    running = (PENDING, PROCESSING)
    try:
        with resources.sessions() as session:
            batches = session.scalars(
                select(BatchJob.id).where(BatchJob.status.in_(running), BatchJob.created_at < before)
            ).all()
            jobs = session.scalars(
                select(DatasetJob.id).where(DatasetJob.status.in_(running), DatasetJob.created_at < before)
            ).all()
    except SQLAlchemyError as exc:  # the database is away: Redis alone is reconciled this time
        log.warning("reconcile: cannot read the records: %s", str(exc).splitlines()[0])
        return {}
    return {"batch": list(batches), "dataset_job": list(jobs)}


def _mark_lost(resources: Resources, table: type[BatchJob] | type[DatasetJob], job_id: str) -> None:
    try:
        with session_scope(resources.sessions) as session:
            session.execute(
                update(table)
                .where(table.id == job_id)
                .values(status=FAILURE, error=LOST, finished_at=datetime.now(UTC))
            )
    except SQLAlchemyError as exc:
        log.warning("reconcile: cannot mark %s lost: %s", job_id, str(exc).splitlines()[0])


if __name__ == "__main__":
    raise SystemExit(main())
