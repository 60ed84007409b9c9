"""The FastAPI app: `uvicorn backend.main:app`."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from prometheus_client import REGISTRY

from backend.api.errors import install_error_handlers
from backend.api.main import api_router
from backend.api.middleware import RequestContextMiddleware
from backend.core.config import Settings, get_settings
from backend.core.logging import configure_logging
from backend.core.metrics import ServiceCollector
from backend.core.redis import async_redis, sync_redis
from backend.db.session import make_engine, session_factory
from backend.ml.registry import get_registry
from backend.services.predictions import EcloPredictionService, PredictionCache
from backend.services.recorder import Recorder
from backend.tasks.celery_app import create_celery
from backend.tasks.store import BatchStore


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = app.state
        state.settings = settings
        state.registry = get_registry(settings.model_dir, num_threads=1)
        state.registry.load()  # once, before the first request
        state.redis = sync_redis(settings.redis_url, settings)
        state.broker_redis = (
            state.redis if settings.broker_url == settings.redis_url else sync_redis(settings.broker_url, settings)
        )
        state.store = BatchStore.from_settings(state.redis, settings)
        cache_client = async_redis(settings.cache_redis_url, settings) if settings.cache_enabled else None
        state.cache = PredictionCache(cache_client, settings.key_prefix, settings.cache_ttl_seconds)
        state.db_engine = make_engine(settings.database_url)
        state.db_sessions = session_factory(state.db_engine)
        state.recorder = Recorder(state.db_sessions)
        state.recorder.start()
        state.eclo_service = EcloPredictionService(state.registry, state.cache, state.recorder)
        collector = ServiceCollector(state.store.batch_stats, state.recorder.stats)
        REGISTRY.register(collector)
        state.celery = create_celery(settings)
        # Startup objects (libraries, model, vocabularies) live as long as the process: keep them out of the
        # cyclic GC, whose full passes over them otherwise stall requests for tens of milliseconds.
        gc.freeze()
        try:
            yield
        finally:
            REGISTRY.unregister(collector)
            state.recorder.stop()
            state.db_engine.dispose()
            if cache_client is not None:
                await cache_client.aclose()
            state.redis.close()
            state.celery.close()

    app = FastAPI(
        title="Traffic prediction service",
        description="ECLO accident-severity predictions for Daegu: single answers in-process, batches via Celery.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["*"],
        allow_headers=["*"],
        expose_headers=["X-Request-ID", "Retry-After"],
    )
    app.add_middleware(RequestContextMiddleware, access_log=settings.access_log)
    install_error_handlers(app)
    app.include_router(api_router)
    return app


app = create_app()
