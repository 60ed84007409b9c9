"""Every request and response body of the API, in one place."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

CLASSIC_EXAMPLE: dict[str, Any] = {
    "weather": "맑음",
    "road_surface": "건조",
    "road_type": "교차로",
    "accident_type": "차대차",
    "time_period": "낮",
    "district": "중구",
    "day_of_week": "월요일",
    "accident_hour": 14,
    "accident_year": 2024,
    "accident_month": 12,
    "accident_day": 10,
}


class EcloInput(BaseModel):
    """One accident. Categories must be in the loaded model's vocabulary (see GET /api/models).

    Documents the body; validation (every bad field at once, against the model's vocabularies) is done by
    the model runtime, the same code the batch workers use.
    """

    model_config = ConfigDict(json_schema_extra={"examples": [CLASSIC_EXAMPLE]})

    weather: str = Field(description="기상상태, e.g. 맑음")
    road_surface: str = Field(description="노면상태, e.g. 건조")
    road_type: str = Field(description="도로형태: a major class (교차로) or the full value (교차로 - 교차로안)")
    accident_type: str = Field(description="사고유형: 차대사람, 차대차, 차량단독")
    time_period: str | None = Field(
        default=None,
        description="출근시간대, 퇴근시간대, 심야, 일반시간대; derived from accident_hour when absent",
    )
    district: str = Field(description="시군구: a 구/군 (중구) or the full value (대구광역시 중구 동성로1가)")
    day_of_week: str = Field(description="요일, e.g. 월요일")
    accident_hour: int = Field(ge=0, le=23)
    accident_year: int = Field(ge=1970, le=2100)
    accident_month: int = Field(ge=1, le=12)
    accident_day: int = Field(ge=1, le=31)


class Contribution(BaseModel):
    feature: str
    contribution: float = Field(description="effect on log1p(ECLO) of this input field")


class EcloPredictionResponse(BaseModel):
    eclo: float = Field(ge=0)
    risk_level: str
    model_version: str
    explanation: list[Contribution]
    cached: bool


class BatchSubmitRequest(BaseModel):
    items: list[Any] = Field(
        description="1 to 100 rows, each an ECLO input object",
        json_schema_extra={"examples": [[CLASSIC_EXAMPLE]]},
    )


BatchStatus = Literal["pending", "processing", "success", "partial", "failure"]


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
    index: int
    eclo: float
    risk_level: str
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


T = TypeVar("T")


class Page(BaseModel, Generic[T]):  # noqa: UP046 - pydantic generics on Python 3.11
    items: list[T]
    total: int
    page: int
    size: int
    pages: int

    @classmethod
    def build(cls, *, items: list[T], total: int, page: int, size: int) -> Page[T]:
        return cls(items=items, total=total, page=page, size=size, pages=math.ceil(total / size) if total else 0)


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


class ModelMetrics(BaseModel):
    cv_rmsle: float | None
    baseline_constant_rmsle: float | None
    cv_to_baseline_ratio: float | None
    cv_folds: int | None


class ModelInfo(BaseModel):
    name: str
    kind: str | None
    version: str
    trained_at: str | None
    rows: int | None
    data_source: str | None
    lightgbm_version: str | None
    num_trees: int | None
    metrics: ModelMetrics
    features: list[str]
    allowed_values: dict[str, list[str]]
    risk_levels: list[dict[str, Any]]


class ModelList(BaseModel):
    models: list[ModelInfo]


class ComponentHealth(BaseModel):
    status: Literal["ok", "down", "degraded"]
    detail: str | None = None
    latency_ms: float | None = None


class HealthResponse(BaseModel):
    status: Literal["ok", "degraded"]
    components: dict[str, ComponentHealth]


class ErrorBody(BaseModel):
    code: str
    message: str
    details: list[Any] = []


class ErrorResponse(BaseModel):
    error: ErrorBody
