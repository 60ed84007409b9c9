from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from backend.api.deps import CeleryDep, RegistryDep
from backend.api.schemas import HealthResponse
from backend.services import health as health_service

router = APIRouter(prefix="/health", tags=["health"])


@router.get("", responses={503: {"model": HealthResponse}})
def health(request: Request, registry: RegistryDep, celery: CeleryDep) -> JSONResponse:
    """Every component's state (model, redis, broker, database, workers); 503 naming what is down."""
    state = request.app.state
    report = health_service.health(registry, state.redis, state.broker_redis, celery, state.db_engine, state.recorder)
    return JSONResponse(report.model_dump(), status_code=200 if report.status == "ok" else 503)


@router.get("/live")
async def live() -> dict[str, str]:
    """The process answers."""
    return {"status": "ok"}


@router.get("/ready", responses={503: {"model": HealthResponse}})
def ready(registry: RegistryDep) -> JSONResponse:
    """Ready to serve single predictions: the model is loaded."""
    model = health_service.check_model(registry)
    body = {
        "status": "ok" if model.status == "ok" else "degraded",
        "components": {"model": model.model_dump()},
    }
    return JSONResponse(body, status_code=200 if model.status == "ok" else 503)
