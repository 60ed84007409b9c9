"""A worker process's set-up: JSON logs, and its resources opened in each child after the fork."""

from __future__ import annotations

from typing import Any

from celery.signals import setup_logging, worker_process_init, worker_process_shutdown

from backend.core.config import get_settings
from backend.core.logging import configure_logging
from backend.tasks.batches import BatchTask
from backend.tasks.heartbeat import WorkerHeartbeat
from backend.wiring import open_resources

_heartbeat: WorkerHeartbeat | None = None


@setup_logging.connect
def _json_logs(**_: Any) -> None:
    """Celery leaves the logging set-up to this handler: the same JSON lines as the API."""
    configure_logging(get_settings().log_level)


@worker_process_init.connect
def _open_resources(**_: Any) -> None:
    """Boosters are loaded here, in each child: LightGBM's OpenMP state does not survive fork."""
    resources = open_resources(get_settings())
    resources.start_models()
    BatchTask.resources = resources
    global _heartbeat
    _heartbeat = WorkerHeartbeat(resources.redis, resources.settings.key_prefix)
    _heartbeat.start()


@worker_process_shutdown.connect
def _close_resources(**_: Any) -> None:
    if _heartbeat is not None:
        _heartbeat.stop()
    if BatchTask.resources is not None:
        BatchTask.resources.close()
        BatchTask.resources = None
