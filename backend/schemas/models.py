"""What GET /api/models tells of a loaded model. Kinds differ in metrics and inputs: those are open mappings."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class ModelInfo(BaseModel):
    model_config = ConfigDict(extra="allow", protected_namespaces=())

    name: str
    kind: str | None
    version: str
    trained_at: str | None
    rows: int | None
    data_source: str | None
    lightgbm_version: str | None
    num_trees: int | None
    metrics: dict[str, Any]
    features: list[str]
    input_fields: list[dict[str, Any]] = []
    allowed_values: dict[str, list[str]] = {}
    risk_levels: list[dict[str, Any]] = []
    risk_levels_of: str | None = None
    evaluation: dict[str, Any] | None = None
    severe: dict[str, Any] | None = None


class ModelList(BaseModel):
    models: list[ModelInfo]
