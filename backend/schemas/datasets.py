"""Datasets: an uploaded file's description and validation report, its scoring job, and share links."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from backend.schemas.batches import BatchProgress
from backend.schemas.pages import Page

DatasetJobStatusName = Literal["pending", "processing", "success", "partial", "failure", "cancelled"]


class DatasetProblem(BaseModel):
    row: int = Field(description="the data row, counted from 1 (the header is not a row)")
    column: str = Field(description="the file's column the problem is in; empty for the row as a whole")
    problem: str
    value: str | None


class DatasetOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    filename: str
    kind: str = Field(description='"table" (any table, to explore), or the model the rows were checked against')
    model_name: str | None = Field(description="the model the rows were validated against and are scored by")
    layout: Literal["dacon", "api"] | None = Field(
        description="Dacon train/test columns, or the API's field names; none for a table"
    )
    encoding: str = Field(description="UTF-8, UTF-8 with BOM, or CP949")
    columns: list[str]
    rows: int
    valid_rows: int
    problems: int = Field(description="validation problems found (a row may have several)")
    has_outcomes: bool = Field(description="the file holds ECLO or the injury counts: a job reports RMSLE")
    size_bytes: int
    checksum: str = Field(description="SHA-256 of the file as uploaded")
    uploaded_at: datetime
    latest_job_id: str | None


class DatasetDetail(DatasetOut):
    report: Page[DatasetProblem]


class DatasetJobAccepted(BaseModel):
    job_id: str
    dataset_id: str
    status: DatasetJobStatusName
    total: int = Field(description="valid rows to score")
    chunks: int
    poll_url: str


class DatasetJobStatus(BaseModel):
    job_id: str
    dataset_id: str
    status: DatasetJobStatusName
    progress: BatchProgress
    model: str
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    evaluation: dict[str, Any] | None = Field(
        default=None,
        description="when the file has outcomes: RMSLE of the predictions, of the model's training-mean constant "
        "and of the file's own mean, on the same rows",
    )
    results_url: str | None = Field(default=None, description="CSV of the results once the job is final")


class ShareCreated(BaseModel):
    token: str = Field(description="shown once; only its hash is stored")
    url: str
    expires_at: datetime


class SharedDataset(BaseModel):
    dataset: DatasetDetail
    job: DatasetJobStatus | None
    predictions_url: str | None
