"""Batches of any model kind: submission, the poll answer (a result row is the model's own output), listings."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from backend.schemas.eclo import CLASSIC_EXAMPLE

BatchStatus = Literal["pending", "processing", "success", "partial", "failure"]
PENDING, PROCESSING, SUCCESS, PARTIAL, FAILURE = "pending", "processing", "success", "partial", "failure"
FINAL_STATUSES = frozenset({SUCCESS, PARTIAL, FAILURE})


class BatchSubmitRequest(BaseModel):
    items: list[Any] = Field(
        description="1 to 100 rows, each an input object of the model named in the path (congestion: "
        "`{sensor_id, recent?, neighbour_readings?}` as for POST /api/predict/congestion)",
        json_schema_extra={"examples": [[CLASSIC_EXAMPLE], [{"sensor_id": "773869"}, {"sensor_id": "717510"}]]},
    )

    @model_validator(mode="before")
    @classmethod
    def _rows_in_items(cls, data: Any) -> Any:
        """A bare list of rows is the common first try: say how to send it instead of "valid dictionary"."""
        if isinstance(data, list):
            raise PydanticCustomError(
                "batch_not_object", 'the body must be an object: wrap the rows in {"items": [...]}'
            )
        return data


class BatchAccepted(BaseModel):
    batch_id: str
    status: BatchStatus
    total: int
    poll_url: str
    estimated_seconds: float


class BatchProgress(BaseModel):
    done: int
    total: int


class BatchResultItem(BaseModel):
    """One scored row: its index and the model's own output (ECLO: `eclo`, `p_severe`, `relative_risk`,
    `risk_level`, `notes`; other kinds: theirs)."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "index": 0,
                    "eclo": 4.3,
                    "p_severe": 0.31,
                    "relative_risk": 0.94,
                    "risk_level": "moderate",
                    "notes": [],
                    "model_version": "86ed57ac",
                }  # fmt: skip
            ]
        },
    )

    index: int
    model_version: str


class BatchRowError(BaseModel):
    index: int
    message: str
    details: list[dict[str, Any]] = []


class BatchStatusResponse(BaseModel):
    batch_id: str
    status: BatchStatus
    progress: BatchProgress
    model: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    results: list[BatchResultItem] | None = None
    errors: list[BatchRowError] | None = None
    error: str | None = None


class BatchSummary(BaseModel):
    id: str
    model_name: str
    status: BatchStatus
    total: int
    done: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
