"""The ECLO input row and single-prediction answer; the input fields come from
`backend.ml.eclo.features.INPUT_FIELDS`."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from backend.ml.eclo.features import INPUT_FIELDS, InputField

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


def _field(spec: InputField) -> tuple[Any, Any]:
    description = f"{spec.column}: {spec.description}"
    if spec.kind == "integer":
        return int, Field(ge=spec.low, le=spec.high, description=description)
    if not spec.required:
        return str | None, Field(default=None, description=description)
    return str, Field(description=description)


EcloInput = create_model(  # type: ignore[call-overload]
    "EcloInput",
    __doc__=(
        "One accident. Categories must be in the loaded model's vocabulary (see GET /api/models).\n\n"
        "Documents the body; validation (every bad field at once, against the model's vocabularies) is done by "
        "the model runtime, the same code the batch workers use."
    ),
    __config__=ConfigDict(json_schema_extra={"examples": [CLASSIC_EXAMPLE]}),
    **{spec.name: _field(spec) for spec in INPUT_FIELDS},
)


class Contribution(BaseModel):
    feature: str
    contribution: float = Field(description="effect on log1p(ECLO) of this input field")


class SevereContribution(BaseModel):
    feature: str
    contribution: float = Field(
        description="effect of this input field on the log-odds of a death or serious injury (the classifier's raw "
        "margin, before calibration); positive raises the chance"
    )


class EcloPredictionResponse(BaseModel):
    eclo: float = Field(ge=0, description="expected ECLO (10 x deaths + 5 x serious + 3 x minor + reported injuries)")
    p_severe: float = Field(ge=0, le=1, description="calibrated chance of at least one death or serious injury")
    relative_risk: float = Field(ge=0, description="p_severe over the model's base rate (the city's recent average)")
    risk_level: str = Field(description="band of relative_risk; the bands are in GET /api/models (risk_levels)")
    model_version: str
    notes: list[str] = Field(
        description="inputs the model could not use as given and what it did instead, e.g. a 동 it has not seen "
        "predicted at the 구/군 level"
    )
    explanation: list[Contribution] = Field(
        description="the input fields that moved the expected ECLO most (TreeSHAP, in log1p(ECLO) units), largest "
        "effect first"
    )
    severe_explanation: list[SevereContribution] = Field(
        description="the input fields that moved the chance of a death or serious injury most (TreeSHAP of the "
        "severe-outcome classifier, in log-odds units), largest effect first"
    )
    cached: bool
