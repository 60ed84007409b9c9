"""The FastAPI app: `uvicorn backend.main:app`."""

from __future__ import annotations

import gc
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from prometheus_client import REGISTRY

from backend.api.errors import install_error_handlers
from backend.api.middleware import HotRoutes, RequestContextMiddleware
from backend.api.routers import ROUTERS
from backend.api.routes.predict import HOT_PREFIX, answer_prediction
from backend.core.config import Settings, get_settings
from backend.core.logging import configure_logging
from backend.core.metrics import ServiceCollector
from backend.core.redis import async_redis, sync_redis
from backend.db.recorder import Recorder
from backend.predictions.caches import LocalPredictionCache, PredictionCache
from backend.predictions.entry import Predictions
from backend.services.congestion import CongestionService
from backend.services.datasets import DatasetService
from backend.services.explore import ExploreService
from backend.services.feed import feed_lag_seconds, stream_key
from backend.services.health import HealthMonitor, health_of
from backend.services.keys import KeyDirectory
from backend.services.readings import SensorDirectory
from backend.services.upload_check import UploadChecker
from backend.tasks.celery_app import celery_app, configure_celery
from backend.wiring import open_resources


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = app.state
        configure_celery(celery_app, settings)
        resources = state.resources = open_resources(settings)
        resources.registry.load()  # once, before the first request
        state.broker_redis = (
            resources.redis if settings.broker_url == settings.redis_url else sync_redis(settings.broker_url, settings)
        )
        cache_client = async_redis(settings.cache_redis_url, settings) if settings.cache_enabled else None
        cache = PredictionCache(cache_client, settings.key_prefix, settings.cache_ttl_seconds)
        state.recorder = Recorder(resources.sessions, resources.spill)
        state.recorder.start()
        local_cache = LocalPredictionCache(settings.cache_local_entries if settings.cache_enabled else 0)
        servings = resources.predictions.servings
        state.predictions = Predictions(
            resources.registry, servings, {"local": local_cache, "shared": cache}, state.recorder
        )
        state.congestion_service = CongestionService(resources.registry, resources.sessions, servings["congestion"])
        state.sensors = SensorDirectory(resources.sessions)
        state.dataset_service = DatasetService(resources, UploadChecker(settings))
        state.explore_service = ExploreService(resources)
        state.api_keys = (
            KeyDirectory(resources.sessions, settings.auth_cache_seconds) if settings.auth_enabled else None
        )
        state.health = HealthMonitor(partial(health_of, resources, state.broker_redis, state.recorder))
        collector = ServiceCollector(
            resources.batches.batch_stats,
            state.recorder.stats,
            lambda: feed_lag_seconds(resources.redis, stream_key(settings), settings.feed_group),
        )
        REGISTRY.register(collector)
        # Startup objects (libraries, model, vocabularies) live as long as the process: keep them out of the
        # cyclic GC, whose full passes over them otherwise stall requests for tens of milliseconds.
        gc.freeze()
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(settings.gil_switch_interval_ms / 1000)
        try:
            yield
        finally:
            sys.setswitchinterval(switch_interval)
            REGISTRY.unregister(collector)
            state.recorder.stop()
            state.dataset_service.checker.close()
            if cache_client is not None:
                await cache_client.aclose()
            if state.broker_redis is not resources.redis:
                state.broker_redis.close()
            resources.close()

    app = FastAPI(
        title="Traffic prediction service",
        description="Traffic predictions: ECLO accident severity for Daegu, and road-sensor congestion 15/30/60 "
        "minutes ahead from ingested readings. Single answers in-process, batches of any model kind via Celery.",
        version="0.1.0",
        lifespan=lifespan,
        # FastAPI's own OpenTelemetry hooks, unused here (metrics are Prometheus'), asked on every request
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.add_middleware(HotRoutes, prefix=HOT_PREFIX, answer=answer_prediction)
    if settings.cors_origins:  # each middleware is an ASGI hop on every request: none that is not needed
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["X-Request-ID", "Retry-After"],
        )
    app.add_middleware(
        RequestContextMiddleware,
        access_log=settings.access_log,
        max_body_bytes=settings.request_max_bytes,
        own_limits=frozenset({"/api/datasets"}),  # the upload streams to disk under DATASET_MAX_BYTES
    )
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    return app


app = create_app()
