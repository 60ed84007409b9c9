"""Dependencies injected into the routes; everything comes from the app's state, built in its lifespan."""

from __future__ import annotations

from typing import Annotated, Any

from celery import Celery
from fastapi import Body, Depends, Request

from backend.api.schemas import CLASSIC_EXAMPLE
from backend.core.config import Settings
from backend.core.errors import DependencyUnavailable
from backend.ml.errors import ModelNotFound
from backend.ml.predictor import EcloModel
from backend.ml.registry import ModelRegistry
from backend.services.predictions import PredictionCache
from backend.tasks.store import BatchStore


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_registry(request: Request) -> ModelRegistry:
    return request.app.state.registry


def get_eclo_model(request: Request) -> EcloModel:
    try:
        return request.app.state.registry.get("eclo")
    except ModelNotFound as exc:
        raise DependencyUnavailable("model", str(exc)) from exc


def get_cache(request: Request) -> PredictionCache:
    return request.app.state.cache


def get_store(request: Request) -> BatchStore:
    return request.app.state.store


def get_celery(request: Request) -> Celery:
    return request.app.state.celery


def get_request_id(request: Request) -> str:
    return request.state.request_id


SettingsDep = Annotated[Settings, Depends(get_settings)]
RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]
EcloModelDep = Annotated[EcloModel, Depends(get_eclo_model)]
CacheDep = Annotated[PredictionCache, Depends(get_cache)]
StoreDep = Annotated[BatchStore, Depends(get_store)]
CeleryDep = Annotated[Celery, Depends(get_celery)]
RequestIdDep = Annotated[str, Depends(get_request_id)]
# The raw row: validated field by field by the model runtime, so every bad field is named at once.
EcloRowBody = Annotated[dict[str, Any], Body(examples=[CLASSIC_EXAMPLE])]
