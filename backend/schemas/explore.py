"""Exploring any uploaded table: its profile, a structured query and its answer, points on a map, proximity counts.

Transport-neutral and bounded: every list and string has a maximum, so a query's size is known before it runs.
A query names columns and values only; it is compiled to parameterised SQL by `backend.explore.query` and never
carries SQL or a file path of its own.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

FilterOp = Literal["eq", "ne", "lt", "le", "gt", "ge", "in", "not_in", "contains", "is_null", "not_null", "between"]
AggregateOp = Literal["count", "sum", "mean", "median", "min", "max", "std", "percentile", "distinct"]
TimePart = Literal["year", "month", "weekday", "hour", "date"]
ColumnType = Literal["number", "category", "text", "date", "coordinate"]

MAX_NAME = 200  # a column name or an output key
MAX_TEXT_VALUE = 1000  # one filter value
MAX_LIST_VALUES = 1000  # the values of `in` / `not_in`

Scalar = bool | int | float | str


def _check_value(value: Any) -> Any:
    """A filter value is a scalar, or a flat list of scalars, of bounded size; NaN and infinities are refused."""
    if value is None:
        return None
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, list):
        if len(value) > MAX_LIST_VALUES:
            raise ValueError(f"at most {MAX_LIST_VALUES} values in a list")
        return [_check_scalar(v) for v in value]
    return _check_scalar(value)


def _check_scalar(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, str):
        if len(value) > MAX_TEXT_VALUE:
            raise ValueError(f"a text value is at most {MAX_TEXT_VALUE} characters")
        return value
    if isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("a number must be finite (no NaN or infinity)")
        return value
    raise ValueError(f"a value must be text, a number, true/false or a list of those, not {type(value).__name__}")


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Filter(_Input):
    column: str = Field(min_length=1, max_length=MAX_NAME)
    op: FilterOp
    value: Any = Field(
        default=None,
        description="a scalar; a list for `in`/`not_in`; [low, high] (inclusive) for `between`; none for "
        "`is_null`/`not_null`. `ne` and `not_in` keep rows where the column is missing (as pandas does); the other "
        "comparisons drop them",
    )

    @field_validator("value")
    @classmethod
    def _bounded(cls, value: Any) -> Any:
        return _check_value(value)


class Aggregate(_Input):
    op: AggregateOp
    column: str | None = Field(default=None, max_length=MAX_NAME, description="none only for `count` (rows)")
    q: float | None = Field(default=None, ge=0.0, le=1.0, description="the quantile of `percentile`, 0..1")
    name: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_NAME,
        description='the output key; default "count", "<op>_<column>", "p90_<column>" for percentile q=0.9',
    )


class OrderBy(_Input):
    column: str = Field(min_length=1, max_length=MAX_NAME, description="an output column (group or aggregate)")
    desc: bool = False


class TimePattern(_Input):
    column: str = Field(min_length=1, max_length=MAX_NAME, description="a date column")
    by: TimePart = Field(description="adds a group column named after it; weekday: 0 = Monday .. 6 = Sunday")


class CrossTab(_Input):
    row: str = Field(min_length=1, max_length=MAX_NAME)
    column: str = Field(min_length=1, max_length=MAX_NAME, description="its values become the answer's keys")
    value: Aggregate | None = Field(default=None, description="what each cell holds; the row count by default")


class TableQuery(_Input):
    filters: list[Filter] = Field(default_factory=list, max_length=20)
    group_by: list[str] = Field(default_factory=list, max_length=4)
    aggregates: list[Aggregate] = Field(default_factory=list, max_length=10)
    order_by: list[OrderBy] = Field(default_factory=list, max_length=4)
    limit: int = Field(default=100, ge=1, le=1000)
    time: TimePattern | None = None
    crosstab: CrossTab | None = None

    @field_validator("group_by")
    @classmethod
    def _names(cls, names: list[str]) -> list[str]:
        for name in names:
            if not name or len(name) > MAX_NAME:
                raise ValueError(f"a column name is 1..{MAX_NAME} characters")
        return names


class QueryResult(BaseModel):
    columns: list[str]
    rows: list[dict[str, Any]] = Field(description="one key per column; JSON-safe values (dates as ISO text)")
    truncated: bool = Field(description="more rows (or crosstab columns) matched than were returned")
    elapsed_ms: float | None = None


class ValueCount(BaseModel):
    value: Any
    count: int


class ColumnSummary(BaseModel):
    """A column's counts and, for numbers (and dates: min and max), its summary numbers."""

    name: str
    type: ColumnType
    missing: int
    missing_share: float
    distinct: int
    min: float | str | None = None  # numbers; dates as ISO text
    q1: float | None = None
    median: float | None = None
    q3: float | None = None
    max: float | str | None = None
    mean: float | None = None
    std: float | None = None


class ColumnProfile(ColumnSummary):
    storage: str = Field(description="the Parquet/Arrow type the column is stored as")
    top: list[ValueCount] = Field(default_factory=list, description="the most frequent values, up to 10")


class Coordinates(BaseModel):
    latitude: str
    longitude: str


class TableProfile(BaseModel):
    rows: int
    columns: list[ColumnProfile]
    coordinates: Coordinates | None = None


class HistogramBin(BaseModel):
    start: float | str  # dates as ISO text
    end: float | str
    count: int


class ColumnDetail(ColumnSummary):
    rows: int
    bins: list[HistogramBin] | None = Field(default=None, description="numbers and dates: equal-width bins")
    values: list[ValueCount] | None = Field(default=None, description="other columns: the most frequent values")
    other: int = Field(default=0, description="non-missing rows whose value is not among `values`")


class PointsResult(BaseModel):
    points: list[dict[str, Any]] = Field(description='{"lat", "lon", "row", ...chosen columns}')
    total: int = Field(description="rows with both coordinates valid")
    left_out: int = Field(description="total minus the points returned (a deterministic sample above the cap)")


class NearResult(BaseModel):
    rows: list[dict[str, Any]]
    summary: dict[str, Any]
