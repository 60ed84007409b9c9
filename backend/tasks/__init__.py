"""Celery app and tasks: `celery -A backend.tasks worker`."""

from backend.tasks.celery_app import celery_app
from backend.tasks.flower_auth import guard_flower

app = celery_app
guard_flower()

__all__ = ["app", "celery_app"]
