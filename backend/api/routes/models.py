from fastapi import APIRouter

from backend.api.auth import ANY_KEY, AUTH_ERRORS
from backend.api.deps import RegistryDep
from backend.schemas.errors import ErrorResponse
from backend.schemas.models import ModelInfo, ModelList

router = APIRouter(prefix="/api/models", tags=["models"], dependencies=[ANY_KEY], responses=AUTH_ERRORS)


@router.get("")
def list_models(registry: RegistryDep) -> ModelList:
    """Every loaded model: version, training date, metrics and the inputs it accepts."""
    return ModelList(models=[ModelInfo.of(registry.get(name).info()) for name in registry.names()])


@router.get("/{name}", responses={404: {"model": ErrorResponse}})
def get_model(name: str, registry: RegistryDep) -> ModelInfo:
    """One loaded model."""
    return ModelInfo.of(registry.get(name).info())
