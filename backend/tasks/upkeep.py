"""`storage.upkeep`, sent by Celery beat every MAINTENANCE_INTERVAL_SECONDS (`backend.db.upkeep`)."""

from __future__ import annotations

from typing import Any

from backend.db.upkeep import upkeep
from backend.tasks.batches import BatchTask
from backend.tasks.celery_app import celery_app


@celery_app.task(name="storage.upkeep", bind=True, base=BatchTask)
def upkeep_task(self: BatchTask) -> dict[str, Any]:
    assert self.resources is not None, "worker resources are opened by worker_process_init"
    resources = self.resources
    return upkeep(resources.settings, resources.engine, resources.sessions).as_dict()
