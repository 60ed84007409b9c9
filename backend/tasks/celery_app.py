"""The one Celery app (API and workers alike): Redis broker and result backend, at-least-once batches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from celery import Celery
from kombu import Queue

from backend.core.config import Settings, get_settings


def bulk_queue(settings: Settings) -> str:
    """The queue of dataset chunks."""
    return f"{settings.celery_queue}-bulk"


def training_queue(settings: Settings) -> str:
    """The queue of training jobs: `make run` and compose give it a worker of its own."""
    return f"{settings.celery_queue}-training"


def celery_config(settings: Settings) -> dict[str, Any]:
    return {
        "broker_url": settings.broker_url,
        "result_backend": settings.result_backend_url,
        "include": [
            "backend.tasks.batches",
            "backend.tasks.datasets",
            "backend.tasks.reconcile",
            "backend.tasks.shadow",
            "backend.tasks.training",
            "backend.tasks.upkeep",
            "backend.tasks.worker",
        ],
        "task_default_queue": settings.celery_queue,
        # Whole files on a queue of their own: a worker takes from both queues in turn, so an interactive batch
        # waits for the chunks already running, never behind every chunk of a file.
        "task_queues": [Queue(settings.celery_queue), Queue(bulk_queue(settings)), Queue(training_queue(settings))],
        "task_routes": {
            "datasets.score_chunk": {"queue": bulk_queue(settings)},
            "models.shadow_score": {"queue": bulk_queue(settings)},
            "models.train": {"queue": training_queue(settings)},
        },
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        # At least once: ack after the work, requeue when the worker process dies, one message at a time.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_soft_time_limit": settings.batch_soft_time_limit_seconds,
        "task_time_limit": settings.batch_time_limit_seconds,
        "broker_transport_options": {
            "visibility_timeout": settings.celery_visibility_timeout_seconds,
            "unacked_restore_interval": settings.celery_unacked_restore_interval_seconds,
            "unacked_restore_throttle": 1,
            "socket_timeout": 5,
            "socket_connect_timeout": 2,
        },
        "result_backend_transport_options": {"visibility_timeout": settings.celery_visibility_timeout_seconds},
        "result_expires": settings.batch_result_ttl_seconds,
        # Publishing must fail fast when Redis is down: the API answers 503 instead of hanging.
        "task_publish_retry_policy": {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5},
        "broker_connection_timeout": 2,
        "broker_connection_retry_on_startup": True,
        # Events for Flower.
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "task_track_started": True,
        "worker_concurrency": settings.worker_concurrency,
        # `celery beat` (make run and compose run one): batches that will never finish by themselves are
        # re-queued or failed (backend.tasks.reconcile); the stores are kept (backend.tasks.upkeep).
        "beat_schedule": {
            "reconcile": {"task": "batches.reconcile", "schedule": float(settings.reconcile_interval_seconds)},
            "upkeep": {"task": "storage.upkeep", "schedule": float(settings.maintenance_interval_seconds)},
        },
        "beat_schedule_filename": str(settings.data_dir / "celerybeat-schedule"),
    }


def configure_celery(app: Celery, settings: Settings) -> None:
    """Point the app at `settings` (the API's lifespan does this before its first publish)."""
    app.conf.update(celery_config(settings))
    # beat opens its schedule file before any signal of its own: on a host whose DATA_DIR holds nothing yet (the
    # files in an object store) the folder would be missing.
    Path(app.conf.beat_schedule_filename).parent.mkdir(parents=True, exist_ok=True)
    app._pool = None  # connections made under other settings are not reused
    app.amqp._producer_pool = None


celery_app = Celery("traffic")
configure_celery(celery_app, get_settings())
