"""Dependencies injected into the routes, from the app state built in its lifespan.

They are `async def` on purpose: FastAPI runs a sync dependency in its threadpool, a round trip per request.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from celery import Celery
from fastapi import Depends, Request
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from backend.core.config import Settings
from backend.core.errors import DependencyUnavailable
from backend.ml.predictor import EcloModel
from backend.ml.registry import ModelRegistry
from backend.services.predictions import EcloPredictionService
from backend.services.recorder import Recorder
from backend.tasks.store import BatchStore


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_registry(request: Request) -> ModelRegistry:
    return request.app.state.registry


async def get_eclo_model(request: Request) -> EcloModel:
    """The loaded ECLO model; 503 naming the model when there is none."""
    return request.app.state.eclo_service.model()


async def get_eclo_service(request: Request) -> EcloPredictionService:
    return request.app.state.eclo_service


async def get_store(request: Request) -> BatchStore:
    return request.app.state.store


async def get_celery(request: Request) -> Celery:
    return request.app.state.celery


async def get_request_id(request: Request) -> str:
    return request.state.request_id


async def get_recorder(request: Request) -> Recorder:
    return request.app.state.recorder


async def get_sessions(request: Request) -> sessionmaker[Session]:
    return request.app.state.db_sessions


def get_db(request: Request) -> Iterator[Session]:
    """A session per request, for the (threadpool) routes that read records."""
    with request.app.state.db_sessions() as session:
        try:
            yield session
        except SQLAlchemyError as exc:
            raise DependencyUnavailable("database", str(exc).splitlines()[0]) from exc


SettingsDep = Annotated[Settings, Depends(get_settings)]
RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]
EcloModelDep = Annotated[EcloModel, Depends(get_eclo_model)]
EcloServiceDep = Annotated[EcloPredictionService, Depends(get_eclo_service)]
StoreDep = Annotated[BatchStore, Depends(get_store)]
CeleryDep = Annotated[Celery, Depends(get_celery)]
RequestIdDep = Annotated[str, Depends(get_request_id)]
RecorderDep = Annotated[Recorder, Depends(get_recorder)]
SessionsDep = Annotated[sessionmaker[Session], Depends(get_sessions)]
SessionDep = Annotated[Session, Depends(get_db)]
