from functools import partial

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from backend.api.deps import RegistryDep, ResourcesDep
from backend.api.errors import health_response
from backend.feed import feed_lag_seconds, heartbeat_key, stream_key
from backend.schemas.errors import HealthErrorResponse
from backend.schemas.health import ComponentHealth, HealthResponse
from backend.services import health as health_service
from backend.tasks.celery_app import celery_app

router = APIRouter(prefix="/health", tags=["health"])


@router.get("", response_model=HealthResponse, responses={503: {"model": HealthErrorResponse}})
def health(request: Request, resources: ResourcesDep) -> JSONResponse:
    """Every component's state (model, redis, broker, database, workers, readings feed); 503 naming what is
    down."""
    state = request.app.state
    settings = resources.settings
    stream = stream_key(settings)

    def feed() -> ComponentHealth:
        lag = partial(feed_lag_seconds, resources.redis, stream, settings.feed_group)
        return health_service.check_feed(resources.redis, heartbeat_key(settings), lag)

    report = health_service.health(
        resources.registry, resources.redis, state.broker_redis, celery_app, resources.engine, state.recorder,
        feed if settings.feed_enabled else None,
    )  # fmt: skip
    return health_response(report)


@router.get("/live")
async def live() -> dict[str, str]:
    """The process answers."""
    return {"status": "ok"}


@router.get("/ready", response_model=HealthResponse, responses={503: {"model": HealthErrorResponse}})
def ready(registry: RegistryDep) -> JSONResponse:
    """Ready to serve single predictions: the model is loaded."""
    return health_response(health_service.readiness(registry))
