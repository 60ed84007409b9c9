"""Health of each component: the model registry, Redis (cache and records), the broker and the workers."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from functools import partial

import redis
from sqlalchemy import Engine

from backend.db.recorder import Recorder
from backend.db.session import ping
from backend.ml.registry import ModelRegistry
from backend.schemas.health import ComponentHealth, HealthResponse
from backend.services.demo_feed import demo_status
from backend.services.feed import feed_lag_seconds, heartbeat_key, stream_key
from backend.tasks.heartbeat import ALIVE_SECONDS, alive_workers
from backend.wiring import Resources

log = logging.getLogger(__name__)


class CheckFailed(Exception):
    """A check's own finding, shown as it is (other exceptions may quote addresses: only their kind is)."""


def _timed(check: Callable[[], str | None]) -> ComponentHealth:
    started = time.perf_counter()
    try:
        detail = check()
    except CheckFailed as exc:
        return ComponentHealth(status="down", detail=str(exc))
    except Exception as exc:  # a health check reports every failure, whatever its kind
        log.warning("health check failed: %s: %s", type(exc).__name__, exc)
        return ComponentHealth(status="down", detail=f"{type(exc).__name__} (the API's log has the details)")
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


def check_workers(client: redis.Redis, prefix: str) -> ComponentHealth:
    """From the workers' heartbeats (backend.tasks.heartbeat): one Redis command, whatever the load."""

    def seen() -> str:
        alive = alive_workers(client, prefix)
        if not alive:
            raise CheckFailed(f"no worker process seen in the last {ALIVE_SECONDS:.0f} s")
        return f"{len(alive)} worker {'process' if len(alive) == 1 else 'processes'}"

    return _timed(seen)


def check_database(engine: Engine, recorder: Recorder) -> ComponentHealth:
    stats = recorder.stats()
    writes = (f"records written {stats['written']}, waiting on disk {stats['spill_bytes']} bytes, "
              f"failed writes {stats['failed']}, dropped {stats['dropped']}")  # fmt: skip
    result = _timed(lambda: ping(engine))
    detail = f"{engine.dialect.name}: {writes}" if result.status == "ok" else f"{result.detail}; {writes}"
    return result.model_copy(update={"detail": detail})


def check_feed(client: redis.Redis, heartbeat_key: str, lag: Callable[[], float]) -> ComponentHealth:
    """The readings feed consumer writes a heartbeat every loop (at most every 0.5 s while idle)."""

    def beat() -> str:
        raw = client.get(heartbeat_key)
        if raw is None:
            raise CheckFailed("no consumer heartbeat: is `python -m backend.services.feed` running?")
        return f"consumer seen {time.time() - float(raw):.1f} s ago; oldest unstored message {lag():.1f} s old"

    return _timed(beat)


def check_demo_feed(status: Callable[[], dict | None]) -> ComponentHealth | None:
    """Present only while the demo feed runs: the readings the map shows are then the demo's."""
    try:
        found = status()
    except redis.RedisError:
        return None
    if found is None:
        return None
    return ComponentHealth(
        status="ok",
        detail=f"demo readings of the congestion model's {found['sensors']} sensors, timestamped now, since "
        f"{found['since'][:16].replace('T', ' ')} UTC; set DEMO_FEED=off to turn it off",
    )


def health(
    registry: ModelRegistry,
    redis_client: redis.Redis,
    broker_client: redis.Redis,
    key_prefix: str,
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
        check_workers(redis_client, key_prefix)
        if components["redis"].status == "ok"
        else ComponentHealth(status="down", detail="redis unreachable: the workers' heartbeats cannot be read")
    )
    status = "ok" if all(c.status == "ok" for c in components.values()) else "degraded"
    return HealthResponse(status=status, components=components)


def health_of(resources: Resources, broker_client: redis.Redis, recorder: Recorder) -> HealthResponse:
    """Every component, from the API's resources: the readings feed counted when it is enabled."""
    settings = resources.settings

    def feed() -> ComponentHealth:
        lag = partial(feed_lag_seconds, resources.redis, stream_key(settings), settings.feed_group)
        return check_feed(resources.redis, heartbeat_key(settings), lag)

    report = health(
        resources.registry, resources.redis, broker_client, settings.key_prefix, resources.engine, recorder,
        feed if settings.feed_enabled else None,
    )  # fmt: skip
    demo = check_demo_feed(partial(demo_status, resources.redis, settings))
    if demo is not None:
        report.components["demo_feed"] = demo
    return report


class HealthMonitor:
    """The health report computed at most once per `ttl_seconds`, however many callers ask at once: probes and
    dashboards never pile checks (and connections) onto the dependencies they check."""

    def __init__(self, compute: Callable[[], HealthResponse], ttl_seconds: float = 1.0) -> None:
        self.compute = compute
        self.ttl_seconds = ttl_seconds
        self._lock = threading.Lock()
        self._report: HealthResponse | None = None
        self._at = 0.0

    def fresh(self) -> HealthResponse | None:
        """The last report while it is fresh: no lock, no I/O (the route answers from here on the event loop)."""
        report = self._report
        return report if report is not None and time.monotonic() - self._at <= self.ttl_seconds else None

    def report(self) -> HealthResponse:
        with self._lock:
            report = self.fresh()
            if report is None:
                report = self._report = self.compute()
                self._at = time.monotonic()
            return report
