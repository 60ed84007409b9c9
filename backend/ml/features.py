"""The one ECLO feature encoding, shared by training, the API and the workers.

A raw row (API field names) is first *parsed* (types, ranges, the coarse/fine split of district and road
type, the time band) and then *vectorized* against a model's learned vocabularies into one float64 row of
the model's feature matrix. Training, single predictions and batches all go through these two functions.
"""

from __future__ import annotations

import calendar
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import holidays
import numpy as np

from backend.ml.errors import FieldError, InvalidRow

YEAR_RANGE = (1970, 2100)


@dataclass(frozen=True, slots=True)
class InputField:
    """One field of an ECLO input row. The API schema, this module's parser and (through GET /api/models) the
    dashboard all read this list: it is the one source of the input fields."""

    name: str
    column: str  # the Dacon train.csv column it comes from
    description: str
    kind: str = "category"  # or "integer"
    required: bool = True
    low: int | None = None
    high: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__ if getattr(self, k) is not None}


INPUT_FIELDS: tuple[InputField, ...] = (
    InputField("weather", "기상상태", "weather, e.g. 맑음"),
    InputField("road_surface", "노면상태", "road surface, e.g. 건조"),
    InputField("road_type", "도로형태", "a major class (교차로) or the full value (교차로 - 교차로안)"),
    InputField("accident_type", "사고유형", "차대사람, 차대차 or 차량단독"),
    InputField(
        "time_period", "시간대", "출근시간대, 퇴근시간대, 심야, 일반시간대; derived from accident_hour when absent",
        required=False,
    ),
    InputField("district", "시군구", "a 구/군 (중구) or the full value (대구광역시 중구 동성로1가)"),
    InputField("day_of_week", "요일", "day of the week, e.g. 월요일"),
    InputField("accident_hour", "사고일시", "hour of the accident", "integer", low=0, high=23),
    InputField("accident_year", "사고일시", "year of the accident", "integer", low=YEAR_RANGE[0], high=YEAR_RANGE[1]),
    InputField("accident_month", "사고일시", "month of the accident", "integer", low=1, high=12),
    InputField("accident_day", "사고일시", "day of the month", "integer", low=1, high=31),
)  # fmt: skip
INPUT_FIELD_BY_NAME = {f.name: f for f in INPUT_FIELDS}
API_FIELDS: tuple[str, ...] = tuple(f.name for f in INPUT_FIELDS)
REQUIRED_FIELDS = tuple(f.name for f in INPUT_FIELDS if f.required)

MORNING_RUSH, EVENING_RUSH, LATE_NIGHT, REGULAR = "출근시간대", "퇴근시간대", "심야", "일반시간대"
TIME_PERIOD_HOURS: dict[str, frozenset[int]] = {
    MORNING_RUSH: frozenset({7, 8, 9}),
    EVENING_RUSH: frozenset({17, 18, 19}),
    LATE_NIGHT: frozenset({22, 23, 0, 1, 2, 3, 4, 5}),
}
TIME_PERIODS = (LATE_NIGHT, REGULAR, MORNING_RUSH, EVENING_RUSH)
# Older free-form labels: accepted, and replaced by the band of the hour.
LEGACY_TIME_LABELS = frozenset({"낮", "밤", "새벽", "아침", "저녁"})

CITY_SUFFIXES = ("광역시", "특별시", "특별자치시")

# Categorical model features and the parsed attribute each one reads.
CATEGORICAL_FEATURES: tuple[str, ...] = (
    "weather",
    "road_surface",
    "road_major",
    "road_minor",
    "accident_type",
    "time_period",
    "gu",
    "dong",
    "day_of_week",
)
NUMERIC_FEATURES: tuple[str, ...] = (
    "year",
    "month",
    "day",
    "hour",
    "hour_sin",
    "hour_cos",
    "month_sin",
    "month_cos",
    "is_day_off",
    "gu_target_mean",
    "dong_target_mean",
)
FEATURES: tuple[str, ...] = CATEGORICAL_FEATURES + NUMERIC_FEATURES
FEATURE_INDEX = {name: i for i, name in enumerate(FEATURES)}
_YEAR, _MONTH, _DAY, _HOUR = (FEATURE_INDEX[n] for n in ("year", "month", "day", "hour"))
_HOUR_SIN, _HOUR_COS = FEATURE_INDEX["hour_sin"], FEATURE_INDEX["hour_cos"]
_MONTH_SIN, _MONTH_COS = FEATURE_INDEX["month_sin"], FEATURE_INDEX["month_cos"]
_IS_DAY_OFF = FEATURE_INDEX["is_day_off"]
# Per-area target statistics: the feature holding it and the categorical feature it is computed over.
TARGET_STAT_FEATURES: dict[str, str] = {"gu_target_mean": "gu", "dong_target_mean": "dong"}
# A statistic whose finer category is missing (a district given as 구/군 only) takes its coarser one's value.
TARGET_STAT_BACKOFF: dict[str, str] = {"dong_target_mean": "gu_target_mean"}
# Fine features a caller may leave out; training blanks them on some rows so the model learns to do without.
FINE_FEATURES: tuple[str, ...] = ("dong", "road_minor")

# The API field each model feature is derived from, for explanations in the caller's terms.
FEATURE_SOURCE: dict[str, str] = {
    "weather": "weather",
    "road_surface": "road_surface",
    "road_major": "road_type",
    "road_minor": "road_type",
    "accident_type": "accident_type",
    "time_period": "time_period",
    "gu": "district",
    "dong": "district",
    "gu_target_mean": "district",
    "dong_target_mean": "district",
    "day_of_week": "day_of_week",
    "year": "accident_year",
    "month": "accident_month",
    "month_sin": "accident_month",
    "month_cos": "accident_month",
    "day": "accident_day",
    "is_day_off": "accident_day",
    "hour": "accident_hour",
    "hour_sin": "accident_hour",
    "hour_cos": "accident_hour",
}


@dataclass(frozen=True, slots=True)
class ParsedRow:
    weather: str
    road_surface: str
    road_major: str
    road_minor: str | None  # "<major> - <minor>", kept whole so the pair is validated
    accident_type: str
    time_period: str
    gu: str
    dong: str | None  # "<구/군> <동>" so that equal 동 names in two 구 stay apart
    day_of_week: str
    road_type: str  # as given, for messages
    district: str  # as given, for messages
    year: int
    month: int
    day: int
    hour: int


def time_period_for_hour(hour: int) -> str:
    for period, hours in TIME_PERIOD_HOURS.items():
        if hour in hours:
            return period
    return REGULAR


def split_district(value: str) -> tuple[str, str | None]:
    """'대구광역시 중구 동성로1가' -> ('중구', '중구 동성로1가'); '중구' -> ('중구', None)."""
    parts = value.split()
    if len(parts) > 1 and parts[0].endswith(CITY_SUFFIXES):
        parts = parts[1:]
    gu = parts[0]
    dong = " ".join(parts[1:])
    return gu, (f"{gu} {dong}" if dong else None)


def split_road_type(value: str) -> tuple[str, str | None]:
    """'교차로 - 교차로안' -> ('교차로', '교차로 - 교차로안'); '교차로' -> ('교차로', None)."""
    major, _, minor = value.partition("-")
    major, minor = major.strip(), minor.strip()
    return major, (f"{major} - {minor}" if minor else None)


@lru_cache(maxsize=256)
def _holidays_of_year(year: int) -> frozenset[tuple[int, int]]:
    return frozenset((d.month, d.day) for d in holidays.country_holidays("KR", years=year))


def is_day_off(year: int, month: int, day: int, day_of_week: str) -> bool:
    return day_of_week in ("토요일", "일요일") or (month, day) in _holidays_of_year(year)


def _text(row: Mapping[str, Any], name: str, errors: list[FieldError], required: bool = True) -> str | None:
    value = row.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            errors.append(FieldError(name, "field required"))
        return None
    if not isinstance(value, str):
        errors.append(FieldError(name, f"must be a text value, got {type(value).__name__}"))
        return None
    return value.strip()


def _integer(row: Mapping[str, Any], name: str, errors: list[FieldError]) -> int | None:
    spec = INPUT_FIELD_BY_NAME[name]
    low, high = spec.low, spec.high
    assert low is not None and high is not None
    value = row.get(name)
    if value is None or value == "":
        errors.append(FieldError(name, "field required"))
        return None
    if isinstance(value, bool):
        number = None
    elif isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
        number = int(value.strip())
    else:
        number = None
    if number is None:
        errors.append(FieldError(name, f"must be an integer, got {value!r}"))
        return None
    if not low <= number <= high:
        errors.append(FieldError(name, f"must be between {low} and {high}, got {number}"))
        return None
    return number


def parse_row(row: Mapping[str, Any]) -> ParsedRow:
    """Types, ranges and derived parts of one raw row; raises InvalidRow naming every bad field."""
    if not isinstance(row, Mapping):
        raise InvalidRow([FieldError("row", f"must be an object with fields {', '.join(API_FIELDS)}")])
    errors: list[FieldError] = [
        FieldError(str(name), f"unknown field; expected: {', '.join(API_FIELDS)}")
        for name in row
        if name not in API_FIELDS
    ]
    weather = _text(row, "weather", errors)
    road_surface = _text(row, "road_surface", errors)
    road_type = _text(row, "road_type", errors)
    accident_type = _text(row, "accident_type", errors)
    district = _text(row, "district", errors)
    day_of_week = _text(row, "day_of_week", errors)
    label = _text(row, "time_period", errors, required=False)
    hour = _integer(row, "accident_hour", errors)
    year = _integer(row, "accident_year", errors)
    month = _integer(row, "accident_month", errors)
    day = _integer(row, "accident_day", errors)
    if year is not None and month is not None and day is not None:
        last = calendar.monthrange(year, month)[1]
        if day > last:
            errors.append(FieldError("accident_day", f"{year}-{month:02d} has {last} days, got {day}"))
    if errors:
        raise InvalidRow(errors)
    assert hour is not None and year is not None and month is not None and day is not None
    road_major, road_minor = split_road_type(road_type)  # type: ignore[arg-type]
    gu, dong = split_district(district)  # type: ignore[arg-type]
    period = time_period_for_hour(hour) if label is None or label in LEGACY_TIME_LABELS else label
    return ParsedRow(
        weather=weather,  # type: ignore[arg-type]
        road_surface=road_surface,  # type: ignore[arg-type]
        road_major=road_major,
        road_minor=road_minor,
        accident_type=accident_type,  # type: ignore[arg-type]
        time_period=period,
        gu=gu,
        dong=dong,
        day_of_week=day_of_week,  # type: ignore[arg-type]
        road_type=road_type,  # type: ignore[arg-type]
        district=district,  # type: ignore[arg-type]
        year=year,
        month=month,
        day=day,
        hour=hour,
    )


def learn_vocabularies(rows: Iterable[ParsedRow]) -> dict[str, list[str]]:
    """The sorted set of values each categorical feature takes in the training rows."""
    seen: dict[str, set[str]] = {name: set() for name in CATEGORICAL_FEATURES}
    for row in rows:
        for name in CATEGORICAL_FEATURES:
            value = getattr(row, name)
            if value is not None:
                seen[name].add(value)
    return {name: sorted(values) for name, values in seen.items()}


@dataclass(frozen=True)
class TargetStat:
    """Smoothed mean of the training target per category value, with the prior for unseen/missing."""

    prior: float
    by_value: dict[str, float]

    def to_dict(self) -> dict:
        return {"prior": self.prior, "by_value": self.by_value}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TargetStat:
        return cls(prior=float(data["prior"]), by_value={k: float(v) for k, v in data["by_value"].items()})


def fit_target_stats(
    X: np.ndarray, y: np.ndarray, vocabularies: Mapping[str, Sequence[str]], smoothing: float = 30.0
) -> dict[str, TargetStat]:
    """Target statistics per area from encoded rows X (codes) and targets y (log1p ECLO)."""
    prior = float(y.mean())
    stats: dict[str, TargetStat] = {}
    for feature, categorical in TARGET_STAT_FEATURES.items():
        codes = X[:, FEATURE_INDEX[categorical]]
        known = ~np.isnan(codes)
        idx = codes[known].astype(np.int64)
        n = len(vocabularies[categorical])
        sums = np.bincount(idx, weights=y[known], minlength=n)
        counts = np.bincount(idx, minlength=n)
        means = (sums + prior * smoothing) / (counts + smoothing)
        values = vocabularies[categorical]
        stats[feature] = TargetStat(prior, {values[i]: float(means[i]) for i in range(n) if counts[i] > 0})
    return stats


def apply_target_stats(
    X: np.ndarray, stats: Mapping[str, TargetStat], vocabularies: Mapping[str, Sequence[str]]
) -> None:
    """Fill the target-statistic columns of X in place from its category codes."""
    for feature, categorical in TARGET_STAT_FEATURES.items():
        table = _stat_table(stats[feature], vocabularies[categorical])
        codes = X[:, FEATURE_INDEX[categorical]]
        filled = np.where(np.isnan(codes), 0, codes).astype(np.int64)
        backoff = TARGET_STAT_BACKOFF.get(feature)
        fallback = X[:, FEATURE_INDEX[backoff]] if backoff else stats[feature].prior
        X[:, FEATURE_INDEX[feature]] = np.where(np.isnan(codes), fallback, table[filled])


def _stat_table(stat: TargetStat, values: Sequence[str]) -> np.ndarray:
    table = np.full(max(len(values), 1), stat.prior, dtype=np.float64)
    for i, value in enumerate(values):
        table[i] = stat.by_value.get(value, stat.prior)
    return table


class FeatureEncoder:
    """Vectorizes parsed rows against one model's vocabularies (and per-area target statistics)."""

    def __init__(
        self, vocabularies: Mapping[str, Sequence[str]], target_stats: Mapping[str, TargetStat] | None = None
    ) -> None:
        self.vocabularies = {name: list(vocabularies[name]) for name in CATEGORICAL_FEATURES}
        self._codes = {name: {v: float(i) for i, v in enumerate(vals)} for name, vals in self.vocabularies.items()}
        self.target_stats = dict(target_stats or {})
        self._stat_tables = {
            feature: (_stat_table(stat, self.vocabularies[TARGET_STAT_FEATURES[feature]]), stat.prior)
            for feature, stat in self.target_stats.items()
        }
        self._allowed = {
            "weather": self.vocabularies["weather"],
            "road_surface": self.vocabularies["road_surface"],
            "road_type": self.vocabularies["road_major"] + self.vocabularies["road_minor"],
            "accident_type": self.vocabularies["accident_type"],
            "time_period": self.vocabularies["time_period"] + sorted(LEGACY_TIME_LABELS),
            "district": self.vocabularies["gu"] + self.vocabularies["dong"],
            "day_of_week": self.vocabularies["day_of_week"],
        }

    def allowed_values(self) -> dict[str, list[str]]:
        """The values each categorical API field accepts under this model (a city prefix is optional)."""
        return self._allowed

    def _code(
        self, feature: str, value: str | None, field: str, errors: list[FieldError], given: str | None = None
    ) -> float:
        if value is None:
            return math.nan
        code = self._codes[feature].get(value)
        if code is None:
            allowed = self._allowed[field]
            shown = value if given is None else given
            errors.append(FieldError(field, f"unknown value {shown!r}; allowed: {_preview(allowed)}", allowed))
            return math.nan
        return code

    def _categorical_codes(self, row: ParsedRow, errors: list[FieldError]) -> list[float]:
        """Codes of the categorical features, in FEATURES order; a value outside the vocabulary is an error
        (a part left None is missing, not an error). A bad major class or 구 hides its finer part's error."""
        codes = [
            self._code("weather", row.weather, "weather", errors),
            self._code("road_surface", row.road_surface, "road_surface", errors),
        ]
        before = len(errors)
        codes.append(self._code("road_major", row.road_major, "road_type", errors, row.road_type))
        codes.append(
            self._code("road_minor", row.road_minor, "road_type", errors, row.road_type)
            if len(errors) == before
            else math.nan
        )
        codes.append(self._code("accident_type", row.accident_type, "accident_type", errors))
        codes.append(self._code("time_period", row.time_period, "time_period", errors))
        before = len(errors)
        codes.append(self._code("gu", row.gu, "district", errors, row.district))
        codes.append(
            self._code("dong", row.dong, "district", errors, row.district) if len(errors) == before else math.nan
        )
        codes.append(self._code("day_of_week", row.day_of_week, "day_of_week", errors))
        return codes

    def vectorize(self, row: ParsedRow) -> np.ndarray:
        """One parsed row -> one float64 feature row; raises InvalidRow for values outside the vocabulary."""
        errors: list[FieldError] = []
        out = np.empty(len(FEATURES), dtype=np.float64)
        out[: len(CATEGORICAL_FEATURES)] = self._categorical_codes(row, errors)
        if errors:
            raise InvalidRow(_one_error_per_field(errors))
        hour_angle = 2.0 * math.pi * row.hour / 24.0
        month_angle = 2.0 * math.pi * (row.month - 1) / 12.0
        out[_YEAR] = row.year
        out[_MONTH] = row.month
        out[_DAY] = row.day
        out[_HOUR] = row.hour
        out[_HOUR_SIN] = math.sin(hour_angle)
        out[_HOUR_COS] = math.cos(hour_angle)
        out[_MONTH_SIN] = math.sin(month_angle)
        out[_MONTH_COS] = math.cos(month_angle)
        out[_IS_DAY_OFF] = 1.0 if is_day_off(row.year, row.month, row.day, row.day_of_week) else 0.0
        for feature, categorical in TARGET_STAT_FEATURES.items():
            index = FEATURE_INDEX[feature]
            code = out[FEATURE_INDEX[categorical]]
            if feature not in self._stat_tables:
                out[index] = math.nan
            elif math.isnan(code):
                backoff = TARGET_STAT_BACKOFF.get(feature)
                out[index] = out[FEATURE_INDEX[backoff]] if backoff else self._stat_tables[feature][1]
            else:
                out[index] = self._stat_tables[feature][0][int(code)]
        return out

    def encode(self, row: Mapping[str, Any]) -> np.ndarray:
        """Raw API row -> feature row (parse, then vectorize); InvalidRow names every bad field at once."""
        try:
            parsed = parse_row(row)
        except InvalidRow as exc:
            bad = {e.field for e in exc.errors}
            raise InvalidRow(exc.errors + self._category_errors(row, skip=bad)) from None
        return self.vectorize(parsed)

    def _category_errors(self, row: Mapping[str, Any], skip: set[str]) -> list[FieldError]:
        """Vocabulary errors of the text fields that parsed, for a row whose other fields did not."""
        if not isinstance(row, Mapping):
            return []

        def text(field: str) -> str | None:
            value = row.get(field)
            return value.strip() if field not in skip and isinstance(value, str) and value.strip() else None

        road_type, district, label = text("road_type"), text("district"), text("time_period")
        road_major, road_minor = split_road_type(road_type) if road_type else (None, None)
        gu, dong = split_district(district) if district else (None, None)
        partial = ParsedRow(
            weather=text("weather"),  # type: ignore[arg-type]
            road_surface=text("road_surface"),  # type: ignore[arg-type]
            road_major=road_major,  # type: ignore[arg-type]
            road_minor=road_minor,
            accident_type=text("accident_type"),  # type: ignore[arg-type]
            time_period=None if label in LEGACY_TIME_LABELS else label,  # type: ignore[arg-type]
            gu=gu,  # type: ignore[arg-type]
            dong=dong,
            day_of_week=text("day_of_week"),  # type: ignore[arg-type]
            road_type=road_type,  # type: ignore[arg-type]
            district=district,  # type: ignore[arg-type]
            year=0,
            month=0,
            day=0,
            hour=0,
        )
        errors: list[FieldError] = []
        self._categorical_codes(partial, errors)
        return errors


def _one_error_per_field(errors: list[FieldError]) -> list[FieldError]:
    seen: dict[str, FieldError] = {}
    for error in errors:
        seen.setdefault(error.field, error)
    return list(seen.values())


def _preview(values: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(values[:limit])
    return shown if len(values) <= limit else f"{shown}, ... ({len(values)} values in all)"
