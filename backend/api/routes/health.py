from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from backend.api.deps import RegistryDep
from backend.api.errors import health_response
from backend.schemas.errors import HealthErrorResponse
from backend.schemas.health import HealthResponse
from backend.services import health as health_service

router = APIRouter(prefix="/health", tags=["health"])


@router.get("", response_model=HealthResponse, responses={503: {"model": HealthErrorResponse}})
async def health(request: Request) -> JSONResponse:
    """Every component's state (model, redis, broker, database, workers, readings feed); 503 naming what is
    down. Computed at most once a second, whoever asks."""
    monitor = request.app.state.health
    return health_response(monitor.fresh() or await run_in_threadpool(monitor.report))


@router.get("/live")
async def live() -> dict[str, str]:
    """The process answers."""
    return {"status": "ok"}


@router.get("/ready", response_model=HealthResponse, responses={503: {"model": HealthErrorResponse}})
def ready(registry: RegistryDep) -> JSONResponse:
    """Ready to serve single predictions: the model is loaded."""
    return health_response(health_service.readiness(registry))
