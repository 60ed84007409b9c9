"""The one ECLO feature encoding, shared by training, the API and the workers.

A raw row (API field names) is first *parsed* (types, ranges, the coarse/fine split of district and road
type, the time band) and then *vectorized* against a model's learned vocabularies into one float64 row of
the model's feature matrix. Training, single predictions and batches all go through these two functions.
"""

from __future__ import annotations

import calendar
import difflib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import holidays
import numpy as np
import pandas as pd

from backend.ml.eclo.vocabulary import ENGLISH
from backend.ml.errors import FieldError, InvalidRow

YEAR_RANGE = (1970, 2100)
# No category of any model is this long; a longer text is refused without being echoed.
MAX_TEXT_CHARS = 200


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

WEEKDAYS = ("월요일", "화요일", "수요일", "목요일", "금요일", "토요일", "일요일")  # Monday first
WEEKEND = frozenset(WEEKDAYS[5:])

# Categorical model features, each read from the parsed attribute of the same name. 동 is not one: most of its
# ~200 values are too rare to split on, so it enters through smoothed target means and its accident profile.
CATEGORICAL_FEATURES: tuple[str, ...] = (
    "weather",
    "road_surface",
    "road_major",
    "road_minor",
    "accident_type",
    "time_period",
    "gu",
    "day_of_week",
)
CALENDAR_FEATURES: tuple[str, ...] = ("year", "month", "hour", "weekday", "is_holiday", "is_weekend")
# A fine attribute a caller may leave out (or the model may not know), and the coarser one that stands in for it.
COARSER: dict[str, str] = {"dong": "gu", "road_minor": "road_major"}


@dataclass(frozen=True, slots=True)
class TargetEncoding:
    """A feature holding the smoothed training mean of log1p(ECLO) over a combination of row attributes.

    The mean of a fine combination (with 동 or the road minor class) is smoothed towards its coarse one (구/군,
    road major class), which in turn is smoothed towards the overall mean; a row without the fine part, or
    with a fine value the model has not seen, takes the coarse mean.
    """

    feature: str
    parts: tuple[str, ...]

    @property
    def has_fine(self) -> bool:
        return any(part in COARSER for part in self.parts)

    def key(self, row: ParsedRow, coarse: bool) -> str | None:
        values = []
        for part in self.parts:
            value = getattr(row, COARSER.get(part, part) if coarse else part)
            if value is None:
                return None
            values.append(str(value))
        return "|".join(values)


TARGET_ENCODINGS: tuple[TargetEncoding, ...] = (
    TargetEncoding("te_dong", ("dong",)),
    TargetEncoding("te_road_accident", ("road_minor", "accident_type")),
    TargetEncoding("te_weekday_hour", ("day_of_week", "hour")),
    TargetEncoding("te_dong_accident", ("dong", "accident_type")),
    TargetEncoding("te_hour_accident", ("hour", "accident_type")),
    TargetEncoding("te_dong_road", ("dong", "road_minor")),
    TargetEncoding("te_gu_accident", ("gu", "accident_type")),
    TargetEncoding("te_weather_surface", ("weather", "road_surface")),
)
# Per-동 facts of the training years (inputs only, no target): how many accidents a year, and what kind.
AREA_FEATURES: tuple[str, ...] = (
    "dong_accidents_per_year",
    "dong_pedestrian_share",
    "dong_single_vehicle_share",
    "dong_intersection_share",
)
NUMERIC_FEATURES: tuple[str, ...] = CALENDAR_FEATURES + tuple(e.feature for e in TARGET_ENCODINGS) + AREA_FEATURES
FEATURES: tuple[str, ...] = CATEGORICAL_FEATURES + NUMERIC_FEATURES
FEATURE_INDEX = {name: i for i, name in enumerate(FEATURES)}
_CALENDAR_START = FEATURE_INDEX["year"]
_ENCODING_START = FEATURE_INDEX[TARGET_ENCODINGS[0].feature]
_AREA_START = FEATURE_INDEX[AREA_FEATURES[0]]

# The API fields each model feature is derived from, for explanations in the caller's terms (a feature of two
# fields gives each half of its contribution).
_ATTRIBUTE_SOURCE: dict[str, str] = {
    "weather": "weather",
    "road_surface": "road_surface",
    "road_major": "road_type",
    "road_minor": "road_type",
    "accident_type": "accident_type",
    "time_period": "time_period",
    "gu": "district",
    "dong": "district",
    "day_of_week": "day_of_week",
    "year": "accident_year",
    "month": "accident_month",
    "hour": "accident_hour",
    "weekday": "day_of_week",
    "is_holiday": "accident_day",
    "is_weekend": "day_of_week",
}
FEATURE_SOURCES: dict[str, tuple[str, ...]] = {
    **{name: (_ATTRIBUTE_SOURCE[name],) for name in CATEGORICAL_FEATURES + CALENDAR_FEATURES},
    **{e.feature: tuple(dict.fromkeys(_ATTRIBUTE_SOURCE[p] for p in e.parts)) for e in TARGET_ENCODINGS},
    **dict.fromkeys(AREA_FEATURES, ("district",)),
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


# English spellings accepted besides ENGLISH's hints: full weekday names, the time bands without their hours.
EXTRA_ENGLISH: dict[str, tuple[str, ...]] = {
    **{day: (name,) for day, name in zip(WEEKDAYS, ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday",
                                                     "Saturday", "Sunday"), strict=True)},
    MORNING_RUSH: ("morning rush",), EVENING_RUSH: ("evening rush",), LATE_NIGHT: ("late night",),
}  # fmt: skip
_ENGLISH_CITIES = frozenset({"daegu", "daegucity", "daegumetropolitancity"})
_SEPARATORS = re.compile(r"[\s\-_]+")


def normal_text(value: str) -> str:
    """The form English values are matched in: case, spaces, hyphens and underscores ignored ('JUNG GU' = 'jung-gu')."""
    return _SEPARATORS.sub("", value).casefold()


def english_index(values: Iterable[str], english: Mapping[str, str] = ENGLISH) -> dict[str, str]:
    """Normalised English hint (and extra spelling) -> the one value of `values` it names; a spelling shared by
    two values of the field names neither (ambiguous) and is left out."""
    found: dict[str, set[str]] = {}
    for value in values:
        spellings = ([english[value]] if value in english else []) + list(EXTRA_ENGLISH.get(value, ()))
        for spelling in spellings:
            found.setdefault(normal_text(spelling), set()).add(value)
    return {key: next(iter(names)) for key, names in found.items() if len(names) == 1}


def shown_with_english(value: str, english: Mapping[str, str] = ENGLISH) -> str:
    """'중구' -> '중구 (Jung-gu)'; '교차로 - 교차로안' -> '교차로 - 교차로안 (intersection - inside)'; a value without
    a hint as it is."""
    major, _, minor = value.partition(" - ")
    if minor:
        if major in english and minor in english:
            return f"{value} ({english[major]} - {english[minor]})"
        return value
    return f"{value} ({english[value]})" if value in english else value


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


def load_holidays() -> None:
    """Every accepted year's holidays, once: computed on a request instead, the first request of each year would
    wait for them, and the very first for the `holidays` package to load its Korean calendar."""
    for year in range(YEAR_RANGE[0], YEAR_RANGE[1] + 1):
        _holidays_of_year(year)


def _text(row: Mapping[str, Any], name: str, errors: list[FieldError], required: bool = True) -> str | None:
    value = row.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            errors.append(FieldError(name, "field required"))
        return None
    if not isinstance(value, str):
        errors.append(FieldError(name, f"must be a text value, got {type(value).__name__}"))
        return None
    if len(value) > MAX_TEXT_CHARS:
        errors.append(FieldError(name, f"longer than {MAX_TEXT_CHARS} characters ({len(value)})"))
        return None
    return value.strip()


# ASCII digits only: str.isdigit also accepts "²" and other digits int() refuses; at most 10 of them.
_INTEGER_TEXT = re.compile(r"-?[0-9]{1,10}")


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
    elif isinstance(value, str) and _INTEGER_TEXT.fullmatch(value.strip()):
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
    unknown = [str(name)[:60] for name in row if name not in API_FIELDS]
    errors = [FieldError(name, f"unknown field; expected: {', '.join(API_FIELDS)}") for name in unknown[:10]]
    if len(unknown) > 10:
        errors.append(FieldError("row", f"{len(unknown)} unknown fields in all"))
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
    """The sorted set of values each categorical feature, and 동, takes in the training rows."""
    names = CATEGORICAL_FEATURES + ("dong",)
    seen: dict[str, set[str]] = {name: set() for name in names}
    for row in rows:
        for name in names:
            value = getattr(row, name)
            if value is not None:
                seen[name].add(value)
    return {name: sorted(values) for name, values in seen.items()}


def coarsened(row: ParsedRow, dong: bool = True, road_minor: bool = True) -> ParsedRow:
    """The row as a caller giving only the 구/군 and/or the road major class would send it."""
    changes: dict[str, None] = {}
    if dong:
        changes["dong"] = None
    if road_minor:
        changes["road_minor"] = None
    return replace(row, **changes) if changes else row


@dataclass(frozen=True)
class TargetStats:
    """Smoothed means of the training target (log1p ECLO) per key of each target encoding."""

    prior: float
    coarse: dict[str, dict[str, float]]  # feature -> coarse key -> mean
    fine: dict[str, dict[str, float]]  # feature -> fine key -> mean (encodings with a fine part only)

    def value(self, encoding: TargetEncoding, row: ParsedRow) -> float:
        if encoding.has_fine:
            key = encoding.key(row, coarse=False)
            if key is not None:
                found = self.fine[encoding.feature].get(key)
                if found is not None:
                    return found
        key = encoding.key(row, coarse=True)
        return self.prior if key is None else self.coarse[encoding.feature].get(key, self.prior)

    def to_dict(self) -> dict[str, Any]:
        return {"prior": self.prior, "coarse": self.coarse, "fine": self.fine}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TargetStats:
        return cls(float(data["prior"]), dict(data["coarse"]), dict(data["fine"]))


class EncodingKeys:
    """Every row's coarse and fine key of each target encoding, computed once for the many fits of training."""

    def __init__(self, rows: Sequence[ParsedRow]) -> None:
        self.coarse = {e.feature: np.array([e.key(r, True) for r in rows], dtype=object) for e in TARGET_ENCODINGS}
        self.fine = {
            e.feature: np.array([e.key(r, False) for r in rows], dtype=object) for e in TARGET_ENCODINGS if e.has_fine
        }


def _group_sums(keys: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct non-missing keys, with the sum and count of y per key."""
    known = np.array([k is not None for k in keys], dtype=bool)
    codes, uniques = pd.factorize(keys[known])
    return (
        np.asarray(uniques, dtype=object),
        np.bincount(codes, weights=y[known], minlength=len(uniques)),
        np.bincount(codes, minlength=len(uniques)).astype(np.float64),
    )


def fit_target_stats(
    keys: EncodingKeys, y: np.ndarray, index: np.ndarray | None = None, smoothing: float = 30.0
) -> TargetStats:
    """Target statistics from the rows at `index` (all rows when None) of `keys`, targets y (log1p ECLO)."""
    index = np.arange(len(y)) if index is None else index
    y = y[index]
    prior = float(y.mean())
    coarse_tables: dict[str, dict[str, float]] = {}
    fine_tables: dict[str, dict[str, float]] = {}
    for encoding in TARGET_ENCODINGS:
        coarse_keys = keys.coarse[encoding.feature][index]
        uniques, sums, counts = _group_sums(coarse_keys, y)
        means = (sums + prior * smoothing) / (counts + smoothing)
        coarse = dict(zip(uniques.tolist(), means.tolist(), strict=True))
        coarse_tables[encoding.feature] = coarse
        if not encoding.has_fine:
            continue
        fine_keys = keys.fine[encoding.feature][index]
        uniques, sums, counts = _group_sums(fine_keys, y)
        # Each fine key's coarse mean: a fine key determines its coarse one, so take it from any row holding it.
        first = pd.Series(np.arange(len(fine_keys))).groupby(fine_keys, dropna=True).first()
        parents = np.array([coarse.get(coarse_keys[first[k]], prior) for k in uniques], dtype=np.float64)
        means = (sums + parents * smoothing) / (counts + smoothing)
        fine_tables[encoding.feature] = dict(zip(uniques.tolist(), means.tolist(), strict=True))
    return TargetStats(prior, coarse_tables, fine_tables)


@dataclass(frozen=True)
class AreaProfile:
    """AREA_FEATURES per 동 of the training years, and per 구/군 (per-동 average) for rows without a known 동."""

    by_dong: dict[str, list[float]]
    by_gu: dict[str, list[float]]

    def values(self, row: ParsedRow) -> list[float] | None:
        found = self.by_dong.get(row.dong) if row.dong is not None else None
        return found if found is not None else self.by_gu.get(row.gu)

    def to_dict(self) -> dict[str, Any]:
        return {"by_dong": self.by_dong, "by_gu": self.by_gu}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AreaProfile:
        return cls(dict(data["by_dong"]), dict(data["by_gu"]))


def fit_area_profile(rows: Sequence[ParsedRow], smoothing: float = 20.0) -> AreaProfile:
    """Accidents per year and shares of pedestrian, single-vehicle and intersection accidents, per 동 (shares
    smoothed towards the 구/군's) and per 구/군."""
    years = max(1, len({r.year for r in rows}))
    counts: dict[str, np.ndarray] = {}
    dongs_of_gu: dict[str, set[str]] = {}
    for r in rows:
        flags = (1.0, r.accident_type == "차대사람", r.accident_type == "차량단독", r.road_major == "교차로")
        for key in (r.gu, r.dong):
            if key is not None:
                counts.setdefault(key, np.zeros(4))[:] += flags
        if r.dong is not None:
            dongs_of_gu.setdefault(r.gu, set()).add(r.dong)
    by_gu: dict[str, list[float]] = {}
    for gu in sorted({r.gu for r in rows}):
        n, *shares = counts[gu]
        per_dong = n / years / max(1, len(dongs_of_gu.get(gu, ())))
        by_gu[gu] = [round(per_dong, 6), *(round(s / n, 6) for s in shares)]
    by_dong: dict[str, list[float]] = {}
    for gu, dongs in sorted(dongs_of_gu.items()):
        for dong in sorted(dongs):
            n, *shares = counts[dong]
            prior = by_gu[gu][1:]
            smoothed = [(s + p * smoothing) / (n + smoothing) for s, p in zip(shares, prior, strict=True)]
            by_dong[dong] = [round(n / years, 6), *(round(s, 6) for s in smoothed)]
    return AreaProfile(by_dong, by_gu)


@dataclass(frozen=True, slots=True)
class EncodedRow:
    """One row of the model's feature matrix, and what was changed to make it (e.g. an unknown 동 coarsened)."""

    features: np.ndarray
    notes: tuple[str, ...] = ()


class FeatureEncoder:
    """Vectorizes parsed rows against one model's vocabularies, target statistics and 동 profile."""

    def __init__(
        self,
        vocabularies: Mapping[str, Sequence[str]],
        target_stats: TargetStats | None = None,
        area_profile: AreaProfile | None = None,
    ) -> None:
        self.vocabularies = {name: list(vocabularies[name]) for name in CATEGORICAL_FEATURES + ("dong",)}
        self._codes = {name: {v: float(i) for i, v in enumerate(vals)} for name, vals in self.vocabularies.items()}
        self._dongs = frozenset(self.vocabularies["dong"])
        self.target_stats = target_stats
        self.area_profile = area_profile
        self._allowed = {
            "weather": self.vocabularies["weather"],
            "road_surface": self.vocabularies["road_surface"],
            "road_type": self.vocabularies["road_major"] + self.vocabularies["road_minor"],
            "accident_type": self.vocabularies["accident_type"],
            "time_period": self.vocabularies["time_period"] + sorted(LEGACY_TIME_LABELS),
            "district": self.vocabularies["gu"] + self.vocabularies["dong"],
            "day_of_week": self.vocabularies["day_of_week"],
        }
        # English hints (vocabulary.ENGLISH) -> the model's values, per feature, tried only on a miss; a road minor
        # class is looked up within its major class.
        self._english = {name: english_index(self.vocabularies[name]) for name in CATEGORICAL_FEATURES}
        minors: dict[str, list[str]] = {}
        for value in self.vocabularies["road_minor"]:
            major, _, minor = value.partition(" - ")
            minors.setdefault(major, []).append(minor)
        self._english_minor = {major: english_index(parts) for major, parts in minors.items()}
        # What an unknown value is compared with for "did you mean": normalised Korean value or English hint ->
        # the value shown with its hint. district: the 구/군 (an unknown 동 is no error).
        suggested = {
            "road_type": self.vocabularies["road_major"] + self.vocabularies["road_minor"],
            "district": self.vocabularies["gu"],
        }
        self._suggestions: dict[str, dict[str, list[str]]] = {}
        for field, allowed in self._allowed.items():
            candidates: dict[str, list[str]] = {}
            for value in suggested.get(field, allowed):
                shown = shown_with_english(value)
                candidates.setdefault(normal_text(value), []).append(shown)
                if shown != value:
                    candidates.setdefault(normal_text(shown[len(value) + 2 : -1]), []).append(shown)
            self._suggestions[field] = candidates

    def allowed_values(self) -> dict[str, list[str]]:
        """The values each categorical API field accepts under this model (a city prefix is optional; a 동 or a
        road minor class the model has not seen is accepted inside a known 구/군 or major class, and predicted
        at that coarser level)."""
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
        (a part left None is missing, not an error). A bad major class hides its minor class's error."""
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
        codes.append(self._code("gu", row.gu, "district", errors, row.district))
        codes.append(self._code("day_of_week", row.day_of_week, "day_of_week", errors))
        return codes

    def _resolve(self, row: ParsedRow, errors: list[FieldError]) -> tuple[ParsedRow, tuple[str, ...], list[float]]:
        """The row as encoded (`_known_places`), its notes and its categorical codes. Korean values cost one lookup
        each, as before; only on a miss (or a coarsened value) are English values replaced by the Korean ones (the
        same features as the Korean row), and an error left then suggests the closest allowed values."""
        known, notes = self._known_places(row)
        codes = self._categorical_codes(known, errors)
        if errors or notes:  # a note: an English road minor class in a Korean major one is no error but unknown
            return self._in_korean(row, known, notes, codes, errors)
        return known, notes, codes

    def _in_korean(
        self,
        row: ParsedRow,
        known: ParsedRow,
        notes: tuple[str, ...],
        codes: list[float],
        errors: list[FieldError],
    ) -> tuple[ParsedRow, tuple[str, ...], list[float]]:
        """`_resolve` after a first pass over `row` with errors or notes: again with its English values in Korean
        (if it has any), and suggestions added to the errors left."""
        korean = self._from_english(row)
        if korean is not row:
            errors.clear()
            known, notes = self._known_places(korean)
            codes = self._categorical_codes(known, errors)
        errors[:] = [self._with_suggestions(error, known) for error in errors]
        return known, notes, codes

    def _from_english(self, row: ParsedRow) -> ParsedRow:
        """The row with each value the model does not know but whose English hint names one of its values replaced
        by that value (the same row object when there is none)."""
        codes, english = self._codes, self._english
        changes: dict[str, str | None] = {}
        for name in ("weather", "road_surface", "accident_type", "time_period", "day_of_week"):
            value = getattr(row, name)
            if value is not None and value not in codes[name]:
                found = english[name].get(normal_text(value))
                if found is not None:
                    changes[name] = found
        major = row.road_major
        if major is not None and major not in codes["road_major"]:
            major = english["road_major"].get(normal_text(major), major)
            if major != row.road_major:
                changes["road_major"] = major
        if row.road_minor is not None and (row.road_minor not in codes["road_minor"] or "road_major" in changes):
            minor = row.road_minor.partition(" - ")[2]
            minor = self._english_minor.get(major, {}).get(normal_text(minor), minor)
            if f"{major} - {minor}" != row.road_minor:
                changes["road_minor"] = f"{major} - {minor}"
        if row.gu is not None and row.gu not in codes["gu"] and row.district is not None:
            place = self._english_district(row.district)
            if place is not None:
                changes["gu"], changes["dong"] = place
        return replace(row, **changes) if changes else row

    def _english_district(self, district: str) -> tuple[str, str | None] | None:
        """(구/군, 동 key) of a district whose 구/군 is given in English ('Jung-gu', 'JUNG GU 동성로1가', 'Daegu
        Jung-gu'), or None."""
        parts = district.split()
        if len(parts) > 1 and (parts[0].endswith(CITY_SUFFIXES) or normal_text(parts[0]) in _ENGLISH_CITIES):
            parts = parts[1:]
        gus = self._english["gu"]
        for k in range(1, min(len(parts), 3) + 1):
            gu = gus.get(normal_text("".join(parts[:k])))
            if gu is not None:
                dong = " ".join(parts[k:])
                return gu, (f"{gu} {dong}" if dong else None)
        return None

    def _with_suggestions(self, error: FieldError, row: ParsedRow) -> FieldError:
        """An unknown-value error with "did you mean" the closest allowed values (Korean or English, up to 3)."""
        if not error.message.startswith("unknown value"):
            return error
        if error.field == "road_type":
            value = row.road_major if row.road_major not in self._codes["road_major"] else row.road_minor
        elif error.field == "district":
            value = row.gu
        else:
            value = getattr(row, error.field)
        if value is None:
            return error
        candidates = self._suggestions[error.field]
        keys = difflib.get_close_matches(normal_text(value), candidates, n=6, cutoff=0.5)
        shown = list(dict.fromkeys(value for key in keys for value in candidates[key]))[:3]
        if not shown:
            return error
        return FieldError(error.field, f"{error.message}; did you mean {', '.join(shown)}?", error.allowed)

    def _known_places(self, row: ParsedRow) -> tuple[ParsedRow, tuple[str, ...]]:
        """A 동 the model has not seen inside a 구/군 it knows (renamed or new since training), or a road minor
        class it has not seen inside a known major class (classes added since), is dropped with a note: the row
        is predicted as one giving the coarser value only."""
        notes: list[str] = []
        drop_dong = row.dong is not None and row.dong not in self._dongs and row.gu in self._codes["gu"]
        if drop_dong:
            notes.append(f"district: 동 {row.dong.partition(' ')[2]!r} is not known to the model; "  # type: ignore[union-attr]
                         f"predicted at the 구/군 level ({row.gu})")  # fmt: skip
        minors = self._codes["road_minor"]
        drop_minor = (row.road_minor is not None and row.road_minor not in minors
                      and row.road_major in self._codes["road_major"])  # fmt: skip
        if drop_minor:
            notes.append(f"road_type: {row.road_minor!r} is not known to the model; "
                         f"predicted as its major class ({row.road_major})")  # fmt: skip
        return coarsened(row, dong=drop_dong, road_minor=drop_minor), tuple(notes)

    def vectorize(self, row: ParsedRow) -> EncodedRow:
        """One parsed row -> one float64 feature row; raises InvalidRow for values outside the vocabulary."""
        errors: list[FieldError] = []
        out = np.empty(len(FEATURES), dtype=np.float64)
        known, notes = self._known_places(row)
        codes = self._categorical_codes(known, errors)
        if errors or notes:  # `_resolve`, inline: a valid Korean row pays nothing for English
            known, notes, codes = self._in_korean(row, known, notes, codes, errors)
        row = known
        out[: len(CATEGORICAL_FEATURES)] = codes
        if errors:
            raise InvalidRow(_one_error_per_field(errors))
        holiday = (row.month, row.day) in _holidays_of_year(row.year)
        out[_CALENDAR_START : _CALENDAR_START + len(CALENDAR_FEATURES)] = (
            row.year,
            row.month,
            row.hour,
            WEEKDAYS.index(row.day_of_week) if row.day_of_week in WEEKDAYS else math.nan,
            1.0 if holiday else 0.0,
            1.0 if row.day_of_week in WEEKEND else 0.0,
        )
        stats = self.target_stats
        for offset, encoding in enumerate(TARGET_ENCODINGS):
            out[_ENCODING_START + offset] = math.nan if stats is None else stats.value(encoding, row)
        area = self.area_profile.values(row) if self.area_profile is not None else None
        out[_AREA_START : _AREA_START + len(AREA_FEATURES)] = math.nan if area is None else area
        return EncodedRow(out, notes)

    def _parse(self, row: Mapping[str, Any]) -> ParsedRow:
        """`parse_row`, whose InvalidRow also names the vocabulary errors of the fields that did parse."""
        try:
            return parse_row(row)
        except InvalidRow as exc:
            bad = {e.field for e in exc.errors}
            raise InvalidRow(exc.errors + self._category_errors(row, skip=bad)) from None

    def check(self, row: Mapping[str, Any]) -> None:
        """What `encode` would refuse, without computing the features (a file's rows are checked at upload)."""
        errors: list[FieldError] = []
        self._resolve(self._parse(row), errors)
        if errors:
            raise InvalidRow(_one_error_per_field(errors))

    def encode(self, row: Mapping[str, Any]) -> EncodedRow:
        """Raw API row -> feature row (parse, then vectorize); InvalidRow names every bad field at once."""
        return self.vectorize(self._parse(row))

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
        self._resolve(partial, errors)
        return errors


def _one_error_per_field(errors: list[FieldError]) -> list[FieldError]:
    seen: dict[str, FieldError] = {}
    for error in errors:
        seen.setdefault(error.field, error)
    return list(seen.values())


def _preview(values: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(values[:limit])
    return shown if len(values) <= limit else f"{shown}, ... ({len(values)} values in all)"
