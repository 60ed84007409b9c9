"""Recorded single predictions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class PredictionRecord(BaseModel):
    id: int
    created_at: datetime
    model_name: str
    model_version: str
    inputs: dict[str, Any]
    eclo: float
    risk_level: str
    latency_ms: float
    cached: bool
    request_id: str | None
    key_id: str | None = Field(description="the id of the API key that asked; null when keys are off")
