"""Dependencies injected into the routes, from the resources the app opened in its lifespan
(`backend.wiring.open_resources`, the same function a worker child opens its own with).

They are `async def` on purpose: FastAPI runs a sync dependency in its threadpool, a round trip per request.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from backend.core.config import Settings
from backend.core.errors import DependencyUnavailable
from backend.db.recorder import Recorder
from backend.ml.registry import ModelRegistry
from backend.predictions.entry import Predictions
from backend.services.congestion import CongestionService
from backend.services.datasets import DatasetService
from backend.services.explore import ExploreService
from backend.services.models import ModelLifecycle
from backend.services.readings import SensorDirectory
from backend.stores.batches import BatchStore
from backend.wiring import Resources


async def get_resources(request: Request) -> Resources:
    return request.app.state.resources


async def get_settings(request: Request) -> Settings:
    return request.app.state.resources.settings


async def get_registry(request: Request) -> ModelRegistry:
    return request.app.state.resources.registry


async def get_batch_store(request: Request) -> BatchStore:
    return request.app.state.resources.batches


async def get_sessions(request: Request) -> sessionmaker[Session]:
    return request.app.state.resources.sessions


async def get_congestion_service(request: Request) -> CongestionService:
    return request.app.state.services.congestion


async def get_dataset_service(request: Request) -> DatasetService:
    return request.app.state.services.datasets


async def get_explore_service(request: Request) -> ExploreService:
    return request.app.state.services.explore


async def get_predictions(request: Request) -> Predictions:
    """The one prediction entry, with the API's caches and recorder."""
    return request.app.state.services.predictions


async def get_lifecycle(request: Request) -> ModelLifecycle:
    return request.app.state.services.lifecycle


async def get_sensor_directory(request: Request) -> SensorDirectory:
    return request.app.state.services.sensors


async def get_recorder(request: Request) -> Recorder:
    return request.app.state.services.recorder


async def get_request_id(request: Request) -> str:
    return request.state.request_id


def get_db(request: Request) -> Iterator[Session]:
    """A session per request, for the (threadpool) routes that read records."""
    with request.app.state.resources.sessions() as session:
        try:
            yield session
        except SQLAlchemyError as exc:
            raise DependencyUnavailable("database", "cannot read the records") from exc


ResourcesDep = Annotated[Resources, Depends(get_resources)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]
BatchStoreDep = Annotated[BatchStore, Depends(get_batch_store)]
SessionsDep = Annotated[sessionmaker[Session], Depends(get_sessions)]
CongestionServiceDep = Annotated[CongestionService, Depends(get_congestion_service)]
DatasetServiceDep = Annotated[DatasetService, Depends(get_dataset_service)]
ExploreServiceDep = Annotated[ExploreService, Depends(get_explore_service)]
PredictionsDep = Annotated[Predictions, Depends(get_predictions)]
SensorDirectoryDep = Annotated[SensorDirectory, Depends(get_sensor_directory)]
ModelLifecycleDep = Annotated[ModelLifecycle, Depends(get_lifecycle)]
RecorderDep = Annotated[Recorder, Depends(get_recorder)]
RequestIdDep = Annotated[str, Depends(get_request_id)]
SessionDep = Annotated[Session, Depends(get_db)]
