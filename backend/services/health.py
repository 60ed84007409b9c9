"""Health of each component: the model registry, Redis (cache and records), the broker and the workers."""

from __future__ import annotations

import time
from collections.abc import Callable

import redis
from celery import Celery
from sqlalchemy import Engine

from backend.db.session import ping
from backend.ml.registry import ModelRegistry
from backend.schemas.health import ComponentHealth, HealthResponse
from backend.services.recorder import Recorder

WORKER_PING_TIMEOUT = 0.5


def _timed(check: Callable[[], str | None]) -> ComponentHealth:
    started = time.perf_counter()
    try:
        detail = check()
    except Exception as exc:  # a health check reports every failure, whatever its kind
        return ComponentHealth(status="down", detail=f"{type(exc).__name__}: {exc}")
    return ComponentHealth(status="ok", detail=detail, latency_ms=round((time.perf_counter() - started) * 1e3, 2))


def check_model(registry: ModelRegistry) -> ComponentHealth:
    names = registry.names()
    if not names:
        return ComponentHealth(status="down", detail=f"no model under {registry.model_dir}")
    return ComponentHealth(status="ok", detail=", ".join(f"{n} {registry.get(n).version}" for n in names))


def readiness(registry: ModelRegistry) -> HealthResponse:
    """Ready to serve single predictions: a model is loaded."""
    model = check_model(registry)
    return HealthResponse(status="ok" if model.status == "ok" else "degraded", components={"model": model})


def check_redis(client: redis.Redis) -> ComponentHealth:
    return _timed(lambda: None if client.ping() else "no PONG")


def check_workers(celery: Celery) -> ComponentHealth:
    def ping() -> str:
        replies = celery.control.ping(timeout=WORKER_PING_TIMEOUT)
        if not replies:
            raise RuntimeError("no worker answered")
        return f"{len(replies)} worker(s): " + ", ".join(sorted(name for reply in replies for name in reply))

    return _timed(ping)


def check_database(engine: Engine, recorder: Recorder) -> ComponentHealth:
    stats = recorder.stats()
    writes = f"records written {stats['written']}, failed {stats['failed']}, dropped {stats['dropped']}"
    if stats["last_error"]:
        writes += f"; last error: {stats['last_error']}"
    result = _timed(lambda: ping(engine))
    detail = f"{engine.dialect.name}: {writes}" if result.status == "ok" else f"{result.detail}; {writes}"
    return result.model_copy(update={"detail": detail})


def check_feed(client: redis.Redis, heartbeat_key: str, lag: Callable[[], float]) -> ComponentHealth:
    """The readings feed consumer writes a heartbeat every loop (at most every 0.5 s while idle)."""

    def beat() -> str:
        raw = client.get(heartbeat_key)
        if raw is None:
            raise RuntimeError("no consumer heartbeat: is `python -m backend.feed` running?")
        return f"consumer seen {time.time() - float(raw):.1f} s ago; oldest unstored message {lag():.1f} s old"

    return _timed(beat)


def health(
    registry: ModelRegistry,
    redis_client: redis.Redis,
    broker_client: redis.Redis,
    celery: Celery,
    engine: Engine,
    recorder: Recorder,
    feed: Callable[[], ComponentHealth] | None = None,
) -> HealthResponse:
    components = {
        "model": check_model(registry),
        "redis": check_redis(redis_client),
        "broker": check_redis(broker_client),
        "database": check_database(engine, recorder),
    }
    if feed is not None:
        components["feed"] = feed()
    components["workers"] = (
        check_workers(celery)
        if components["broker"].status == "ok"
        else ComponentHealth(status="down", detail="broker unreachable")
    )
    status = "ok" if all(c.status == "ok" for c in components.values()) else "degraded"
    return HealthResponse(status=status, components=components)
