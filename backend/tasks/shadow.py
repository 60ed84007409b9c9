"""The task `models.shadow_score`: a batch of single predictions scored by the challenger, on the bulk queue (never
ahead of an interactive batch), recorded beside the champion's figures (backend.predictions.shadow)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from backend.core.metrics import SHADOW_SCORES
from backend.db.lifecycle import insert_shadow_scores
from backend.db.session import session_scope
from backend.ml.errors import VersionNotFound
from backend.predictions.shadow import shadow_records
from backend.tasks.batches import BatchTask
from backend.tasks.celery_app import celery_app

if TYPE_CHECKING:
    from backend.wiring import Resources

log = logging.getLogger(__name__)


@celery_app.task(name="models.shadow_score", bind=True, base=BatchTask, acks_late=False)
def score_shadows(self: BatchTask, name: str, challenger_version: str, items: list[list[Any]]) -> int:
    assert self.resources is not None, "worker resources are opened by worker_process_init"
    return run_shadow_scores(self.resources, name, challenger_version, items)


def run_shadow_scores(resources: Resources, name: str, challenger_version: str, items: list[list[Any]]) -> int:
    """The body of `models.shadow_score`, callable without Celery; how many were recorded."""
    try:
        challenger = resources.registry.get(name, challenger_version)
    except VersionNotFound:
        log.warning("shadow scores of %s: version %s is gone; %d dropped", name, challenger_version, len(items))
        return 0
    try:
        records = shadow_records(name, challenger, items)
    except Exception:
        log.exception("shadow scoring of %s by %s failed", name, challenger_version)
        SHADOW_SCORES.labels(name, "failed").inc(len(items))
        return 0
    with session_scope(resources.sessions) as session:
        insert_shadow_scores(session, records)
    SHADOW_SCORES.labels(name, "scored").inc(len(records))
    return len(records)


def send_shadow_scores(name: str, challenger_version: str, items: list[list[Any]]) -> None:
    score_shadows.apply_async(args=[name, challenger_version, items])
