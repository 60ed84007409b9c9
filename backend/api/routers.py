"""The API's routers, in the order a request is matched against them: the hot routes first (Starlette tries
each route in turn), and each included straight into the app (a router nested in a router adds a matching pass
per request)."""

from fastapi import APIRouter

from backend.api.routes import (
    assistant,
    batches,
    datasets,
    explore,
    health,
    history,
    keys,
    metrics,
    models,
    predict,
    traffic,
)

ROUTERS: tuple[APIRouter, ...] = (
    predict.router,
    health.router,
    batches.router,
    traffic.router,
    datasets.router,
    explore.router,
    models.router,
    history.router,
    keys.router,
    assistant.router,
    metrics.router,
)
