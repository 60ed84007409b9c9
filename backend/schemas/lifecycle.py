"""The model lifecycle's requests and answers: versions, training jobs, aliases, shadow scores and drift."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

TrainingStatus = Literal["pending", "running", "success", "failure", "cancelled"]
TRAINING_FINAL = ("success", "failure", "cancelled")
AliasName = Literal["champion", "challenger"]
MAX_DATASETS = 20


class VersionOut(BaseModel):
    version: str
    kind: str
    is_default: bool = Field(description="the committed default model: the name's first version")
    aliases: list[str]
    trained_at: str | None
    training_data: dict[str, Any]
    metrics: dict[str, Any] = Field(description="the version's own evaluation (held-out rows, baselines)")
    comparison: dict[str, Any] | None = Field(
        description="the version and the champion of its training time scored on the same held-out rows"
    )
    deletable: bool


class VersionList(BaseModel):
    name: str
    champion: str
    challenger: str | None
    rollback_to: str | None = Field(description="where POST /rollback moves the champion: the version it pointed at "
                                    "before its last move (else the default); none when there is no other")  # fmt: skip
    keep_versions: int
    versions: list[VersionOut]


class TrainRequest(BaseModel):
    """ECLO: `dataset_ids` (uploaded accident files with outcomes) and `holdout_from_year`; congestion: `since`
    and `until` (the stored readings of that range)."""

    model_config = ConfigDict(extra="forbid")

    dataset_ids: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(
        default=None, min_length=1, max_length=MAX_DATASETS
    )
    holdout_from_year: int | None = Field(default=None, ge=2000, le=2100)
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None
    seed: int = Field(default=42, ge=0, le=2**31 - 1)


class TrainingAccepted(BaseModel):
    job_id: str
    status: TrainingStatus
    poll_url: str


class TrainingJobOut(BaseModel):
    job_id: str
    model_name: str
    status: TrainingStatus
    stage: str | None
    fraction: float = Field(ge=0, le=1)
    log: list[str]
    version: str | None
    error: str | None
    request: dict[str, Any]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class TrainingJobList(BaseModel):
    jobs: list[TrainingJobOut]


class AliasRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: str = Field(min_length=8, max_length=64, pattern=r"^[0-9a-f]+$")


class AliasMoveOut(BaseModel):
    alias: str
    from_version: str | None
    to_version: str | None
    moved_by: str | None
    moved_at: datetime


class AliasMoved(BaseModel):
    name: str
    alias: str
    version: str | None
    previous: str | None
    reload_seconds: float = Field(description="every process serves the move within this many seconds")


class AliasHistory(BaseModel):
    name: str
    moves: list[AliasMoveOut]


class ShadowSummary(BaseModel):
    name: str
    champion: str
    challenger: str | None
    count: int
    mean_abs_difference: float | None
    mean_difference: float | None = Field(description="challenger minus champion, on average")
    largest_difference: float | None
    level_differs_share: float | None = Field(description="share of predictions whose level (risk, congestion) "
                                              "differs between the two")  # fmt: skip
    compared: str = Field(description="the figure compared")
    sample_rate: float = Field(description="the share of single predictions scored in the shadow (SHADOW_SAMPLE_RATE)")
    first: datetime | None
    last: datetime | None


class DriftReport(BaseModel):
    name: str
    version: str
    since: datetime
    until: datetime
    rows: int
    threshold: float
    drifted_share: float | None
    fields: list[dict[str, Any]]
    predictions: list[dict[str, Any]]
    note: str | None = None
