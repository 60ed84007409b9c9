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
    eclo: float | None = Field(description="an ECLO answer's expected ECLO; null for other kinds")
    risk_level: str | None = Field(description="an ECLO answer's risk level; null for other kinds")
    output: dict[str, Any] | None = Field(
        description="the answer of any other kind (a congestion forecast) as it was sent; null for ECLO"
    )
    latency_ms: float
    cached: bool
    request_id: str | None
    key_id: str | None = Field(description="the id of the API key that asked; null when keys are off")
