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
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from backend.api.errors import install_error_handlers
from backend.api.middleware import HotRoutes, RequestContextMiddleware
from backend.api.routers import ROUTERS
from backend.api.routes.predict import HOT_PREFIX, answer_prediction
from backend.assistant.chat import Assistant
from backend.core.config import Settings, get_settings
from backend.core.logging import configure_logging
from backend.core.metrics import ServiceCollector
from backend.core.redis import sync_redis
from backend.mcp.server import build_server, http_app
from backend.services.bundle import open_services
from backend.services.feed import feed_lag_seconds, stream_key
from backend.services.health import HealthMonitor, health_of
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
        resources.start_models()  # once, before the first request; then following the alias table
        state.broker_redis = (
            resources.redis if settings.broker_url == settings.redis_url else sync_redis(settings.broker_url, settings)
        )
        services = state.services = open_services(resources)
        state.mcp = build_server(services, settings)
        state.mcp_http = http_app(state.mcp, settings)
        state.assistant = Assistant(services, state.mcp, settings)
        state.health = HealthMonitor(partial(health_of, resources, state.broker_redis, services.recorder))
        collector = ServiceCollector(
            resources.batches.batch_stats,
            services.recorder.stats,
            lambda: feed_lag_seconds(resources.redis, stream_key(settings), settings.feed_group),
        )
        REGISTRY.register(collector)
        # Startup objects (libraries, model, vocabularies) live as long as the process: keep them out of the
        # cyclic GC, whose full passes over them otherwise stall requests for tens of milliseconds.
        gc.freeze()
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(settings.gil_switch_interval_ms / 1000)
        try:
            async with state.mcp.session_manager.run():
                yield
        finally:
            sys.setswitchinterval(switch_interval)
            REGISTRY.unregister(collector)
            await services.aclose()
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
        max_json_members=settings.request_max_json_members,
        own_limits=frozenset({"/api/datasets"}),  # the upload streams to disk under DATASET_MAX_BYTES
        key_first_skip=HOT_PREFIX,  # the single predictions check their key before their body themselves
    )
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    app.router.routes.append(Route("/mcp", endpoint=MCPEndpoint(), methods=["GET", "POST", "DELETE"]))
    return app


class MCPEndpoint:
    """The MCP server's streamable HTTP, built in the lifespan over the services (an ASGI app, not a handler)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await scope["app"].state.mcp_http(scope, receive, send)


app = create_app()
