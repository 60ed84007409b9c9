"""The in-process congestion predictor: one LightGBM booster (the horizon is a feature), the sensor table, the
neighbour lists, free-flow speeds and the historical profiles it was trained with.

A row is `{"sensor_id", "readings": [{"timestamp", "speed_mph"}, ...], "neighbour_readings": {id: [...]}}`
(readings also in the nested `traffic_data: {speed_mph}` form; timestamps ISO-8601 or epoch seconds). The last 12
five-minute slots up to the newest reading are used; neighbours' readings are optional.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import lightgbm as lgb
import numpy as np

from backend.ml.artifacts import load_booster, read_metadata
from backend.ml.congestion.band import bin_of
from backend.ml.congestion.features import (
    FEATURES,
    HORIZONS,
    NAN,
    STEPS_PER_DAY,
    WINDOW,
    Profiles,
    feature_rows,
    latest_and_lag3,
    summarise,
)
from backend.ml.errors import FieldError, InvalidRow
from backend.ml.fastpath import SingleRowPredictor
from backend.ml.protocol import IDENTITY_KEYS, predict_row_by_row

PROFILES_FILE = "profiles.npy"
MAX_READINGS = 288
# Congestion level from speed / free-flow speed.
LEVELS: list[dict[str, Any]] = [
    {"level": "free", "min_ratio": 0.85},
    {"level": "moderate", "min_ratio": 0.6},
    {"level": "heavy", "min_ratio": 0.4},
    {"level": "severe", "min_ratio": 0.0},
]


_BANDS = tuple((band["min_ratio"], band["level"]) for band in LEVELS)


def congestion_level(speed: float, free_flow: float) -> str:
    ratio = speed / free_flow if free_flow > 0 else 1.0
    for min_ratio, level in _BANDS:
        if ratio >= min_ratio:
            return level
    return _BANDS[-1][1]


class CongestionForecast(NamedTuple):
    """A sensor's forecast; `to_dict()` is the kind's one answer shape (a single answer, a batch row, a record)."""

    sensor_id: str
    as_of: datetime  # the newest reading's time, in the zone the readings came in (naive when they had none)
    speeds: tuple[float, ...]  # at 15, 30, 60 minutes
    levels: tuple[str, ...]
    model_version: str
    readings_used: int
    band: tuple[tuple[float, float], ...] | None = None  # (p10, p90) at each horizon; None: the model has no band

    def to_dict(self) -> dict[str, Any]:
        forecasts = [
            {"horizon_minutes": horizon * 5, "at": (self.as_of + timedelta(minutes=horizon * 5)).isoformat(),
             "speed_mph": speed, "level": level}
            for horizon, speed, level in zip(HORIZONS, self.speeds, self.levels, strict=True)
        ]  # fmt: skip
        for forecast, (low, high) in zip(forecasts, self.band or (), strict=False):
            forecast["speed_mph_p10"], forecast["speed_mph_p90"] = low, high
        return {
            "sensor_id": self.sensor_id,
            "model_version": self.model_version,
            "as_of": self.as_of.isoformat(),
            "readings_used": self.readings_used,
            "forecasts": forecasts,
        }


def _zone_of_newest(readings: Any) -> Any:
    """The time zone of the newest reading sent, so that forecast times read in the zone they came in."""
    newest: datetime | None = None
    for reading in readings if isinstance(readings, list) else []:
        stamp = reading.get("timestamp") if isinstance(reading, Mapping) else None
        try:
            moment = datetime.fromisoformat(stamp) if isinstance(stamp, str) and len(stamp) <= 40 else None
        except ValueError:
            moment = None
        if moment is not None and (newest is None or moment.replace(tzinfo=None) > newest.replace(tzinfo=None)):
            newest = moment
    return newest.tzinfo if newest is not None else None


EPOCH = datetime(1970, 1, 1)


def _mph(speed: float) -> float:
    return round(min(120.0, max(0.0, speed)), 2)


# Readings from 1970 to 2999: forecast times (an hour later) and dates stay representable.
LATEST_SECONDS = (datetime(3000, 1, 1) - EPOCH).total_seconds()


def _timestamp(value: Any) -> float | None:
    """Wall-clock seconds since 1970: a reading's slot of the day is its local time, as in the training data;
    None for a time that is not one, or outside 1970-2999."""
    seconds: float | None = None
    if type(value) is str and len(value) <= 40:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
        seconds = ((moment.replace(tzinfo=None) if moment.tzinfo else moment) - EPOCH).total_seconds()
    elif type(value) in (int, float) and 0 <= value < LATEST_SECONDS:  # NaN, inf and huge ints fail the range
        seconds = float(value)
    return seconds if seconds is not None and 0 <= seconds < LATEST_SECONDS else None


def _nested_speed(reading: Mapping[str, Any]) -> Any:
    nested = reading.get("traffic_data")
    return nested.get("speed_mph") if isinstance(nested, Mapping) else None


def align(
    readings: Any,
    field: str,
    errors: list[FieldError],
    end: float | None = None,
    moments: dict[str, float] | None = None,
) -> tuple[list[float], float]:
    """Readings -> the 12 five-minute slots ending at `end` (default: the newest reading), NaN = missing.

    `moments` memoises parsed timestamps within one prediction: a sensor's and its neighbours' readings
    usually share them, and parsing is most of the single-prediction cost."""
    moments = {} if moments is None else moments
    aligned = _align_plain(readings, end, moments)
    return aligned if aligned is not None else _align_checked(readings, field, errors, end, moments)


def _align_plain(readings: Any, end: float | None, moments: dict[str, float]) -> tuple[list[float], float] | None:
    """`align` of the common case (a list of dicts with string timestamps and numeric speeds) at a third of the
    cost; None for anything else, which `_align_checked` then reads or refuses with the field's error."""
    if type(readings) is not list or not 1 <= len(readings) <= MAX_READINGS:
        return None
    try:
        if end is None:
            for reading in readings:
                stamp = reading["timestamp"]
                if stamp not in moments:
                    if type(stamp) is not str or (moment := _timestamp(stamp)) is None:
                        return None
                    moments[stamp] = moment
            end = max([moments[reading["timestamp"]] for reading in readings])
        window = [NAN] * WINDOW
        for reading in readings:
            stamp, speed = reading["timestamp"], reading["speed_mph"]
            moment = moments.get(stamp)  # keys are strings only: a hit is a string timestamp
            if moment is None:
                if type(stamp) is not str or (moment := _timestamp(stamp)) is None:
                    return None
                moments[stamp] = moment
            if not (type(speed) is float or type(speed) is int) or not 0 <= speed <= 120:
                return None
            back = (end - moment) / 300.0
            if -0.5 < back < WINDOW - 0.5 and speed > 0:  # 0 mph is the layout's "missing"
                window[WINDOW - 1 - int(back + 0.5)] = float(speed)
    except (KeyError, TypeError):
        return None
    return window, end


def _align_checked(
    readings: Any, field: str, errors: list[FieldError], end: float | None, moments: dict[str, float]
) -> tuple[list[float], float]:
    window = [NAN] * WINDOW
    if not isinstance(readings, Sequence) or isinstance(readings, str) or not 1 <= len(readings) <= MAX_READINGS:
        errors.append(FieldError(field, f"must be a list of 1 to {MAX_READINGS} readings"))
        return window, 0.0
    stamps: list[float] = []
    speeds: list[float] = []
    for i, reading in enumerate(readings):
        if type(reading) is not dict and not isinstance(reading, Mapping):
            errors.append(FieldError(f"{field}[{i}]", "must be an object with timestamp and speed_mph"))
            return window, 0.0
        stamp = reading.get("timestamp")
        moment = moments.get(stamp) if type(stamp) is str else None
        if moment is None:
            moment = _timestamp(stamp)
            if moment is None:
                message = "must be an ISO-8601 time or epoch seconds, 1970-2999"
                errors.append(FieldError(f"{field}[{i}].timestamp", message))
                return window, 0.0
            if type(stamp) is str:
                moments[stamp] = moment
        speed = reading.get("speed_mph")
        if speed is None:
            speed = _nested_speed(reading)
        if type(speed) not in (float, int) or not 0 <= speed <= 120:
            errors.append(FieldError(f"{field}[{i}].speed_mph", f"must be a number from 0 to 120, got {speed!r}"))
            return window, 0.0
        stamps.append(moment)
        speeds.append(speed)
    if end is None:
        end = max(stamps)
    for moment, speed in zip(stamps, speeds):  # noqa: B905 - built together above
        back = (end - moment) / 300.0
        if -0.5 < back < WINDOW - 0.5 and speed > 0:  # 0 mph is the layout's "missing"
            window[WINDOW - 1 - int(back + 0.5)] = float(speed)
    return window, end


class CongestionModel:
    """The congestion kind of `backend.ml.protocol.PredictiveModel`."""

    def __init__(self, booster: lgb.Booster, metadata: Mapping[str, Any], profiles: np.ndarray) -> None:
        if list(metadata["features"]) != list(FEATURES):
            raise ValueError("model features differ from this code's congestion features; retrain the model")
        self.booster = booster
        self.metadata = dict(metadata)
        self.name: str = metadata.get("name", "congestion")
        self.kind: str = "congestion"
        self.version: str = metadata["version"]
        self.sensor_ids: list[str] = [s["sensor_id"] for s in metadata["sensors"]]
        self.index = {sensor: i for i, sensor in enumerate(self.sensor_ids)}
        self.free_flow = np.array([s["free_flow_mph"] for s in metadata["sensors"]], dtype=np.float64)
        self.neighbours: dict[str, list[str]] = {k: list(v) for k, v in metadata["neighbours"].items()}
        self.profiles = Profiles(profiles)
        self._single = SingleRowPredictor(booster, len(FEATURES))
        self._free_flow: list[float] = self.free_flow.tolist()
        self._horizons = np.array(HORIZONS)
        offsets = (metadata.get("band") or {}).get("offsets")
        # Per horizon, per bin: (p10, p90) offsets from the forecast (backend.ml.congestion.band).
        self._band: list[list[tuple[float, float]]] | None = (
            [[(lo, hi) for lo, hi in offsets[str(h * 5)]] for h in HORIZONS] if offsets else None
        )

    @classmethod
    def load(cls, folder: Path, *, num_threads: int = 1) -> CongestionModel:
        metadata = read_metadata(folder)
        profiles = np.load(folder / PROFILES_FILE, allow_pickle=False)
        return cls(load_booster(folder, metadata), metadata, profiles)

    def _parse(self, row: Any) -> tuple[int, list[float], float, list[tuple[int, list[float]]]]:
        errors: list[FieldError] = []
        if type(row) is not dict and not isinstance(row, Mapping):
            raise InvalidRow([FieldError("row", "must be an object with sensor_id and readings")])
        sensor = row.get("sensor_id")
        if type(sensor) is not str:
            sensor = str(sensor) if isinstance(sensor, int) and not isinstance(sensor, bool) else None
        if sensor is None or sensor not in self.index:
            shown = ", ".join(self.sensor_ids[:8])
            errors.append(FieldError("sensor_id", f"unknown sensor {row.get('sensor_id')!r}; known: {shown}, ..."))
        moments: dict[str, float] = {}
        window, end = align(row.get("readings"), "readings", errors, moments=moments)
        nearby: list[tuple[int, list[float]]] = []
        given = row.get("neighbour_readings") or {}
        if type(given) is not dict and not isinstance(given, Mapping):
            errors.append(FieldError("neighbour_readings", "must be an object: sensor id -> readings"))
        elif sensor in self.index and not errors:
            for member in self.neighbours.get(sensor, []):
                if member in given:
                    member_window, _ = align(given[member], f"neighbour_readings.{member}", errors, end, moments)
                    nearby.append((self.index[member], member_window))
        if errors:
            raise InvalidRow(errors)
        return self.index[sensor], window, end, nearby  # type: ignore[index]

    def validate(self, row: Any) -> None:
        self._parse(row)

    def features(self, row: Any) -> tuple[list[list[float]], float, int, float]:
        """The model's rows (one per horizon), the base speed, the sensor's index and the window's end."""
        s, window, end, nearby = self._parse(row)
        moment = datetime.fromtimestamp(end, UTC)
        slot, weekday = moment.hour * 12 + moment.minute // 5, moment.weekday()
        profile = self.profiles.filled.item
        summary = summarise(window)
        profile_now = profile(s, weekday, slot)
        targets = tuple(
            profile(s, (weekday + (slot + h) // STEPS_PER_DAY) % 7, (slot + h) % STEPS_PER_DAY) for h in HORIZONS
        )
        nbr = (NAN, NAN, NAN)
        lasts = [(m, *latest_and_lag3(w)) for m, w in nearby]
        lasts = [(m, last, lag3) for m, last, lag3 in lasts if last == last]
        if lasts:
            changes = [last - lag3 for _, last, lag3 in lasts if lag3 == lag3]
            nbr = (
                sum(last for _, last, _ in lasts) / len(lasts),
                sum(changes) / len(changes) if changes else NAN,
                sum(last - profile(m, weekday, slot) for m, last, _ in lasts) / len(lasts),
            )
        rows = feature_rows(summary, slot, weekday, profile_now, targets, self._free_flow[s], nbr)
        base = summary[0] if summary[0] == summary[0] else profile_now
        return rows, base, s, end

    def predict_one(self, row: Any) -> CongestionForecast:
        """No DataFrame, no numpy per step: three rows through LightGBM's single-row fast path."""
        rows, base, s, end = self.features(row)
        raw = self._single.raw_each(rows)
        speeds = tuple(_mph(base + delta) for delta in raw)
        free_flow = self._free_flow[s]
        levels = tuple(congestion_level(v, free_flow) for v in speeds)
        readings = row.get("readings")
        as_of = (EPOCH + timedelta(seconds=end)).replace(tzinfo=_zone_of_newest(readings))
        used = len(readings) if isinstance(readings, list) else 0
        band = None
        if self._band is not None:
            where = bin_of(rows[0][1], free_flow)
            band = tuple((_mph(v + by_bin[where][0]), _mph(v + by_bin[where][1]))
                         for v, by_bin in zip(speeds, self._band, strict=True))  # fmt: skip
        return CongestionForecast(self.sensor_ids[s], as_of, speeds, levels, self.version, used, band)

    def predict_many(self, rows: Sequence[Any]) -> list[CongestionForecast | InvalidRow]:
        """Equal to `predict_one` row by row; a bad row is its InvalidRow (index set)."""
        return predict_row_by_row(self.predict_one, rows)

    def info(self) -> dict[str, Any]:
        m = self.metadata
        metric_names = [f"{kind}_{minutes}" for kind in ("mae", "rmse", "mape") for minutes in (15, 30, 60)]
        metric_names += [f"baseline_{b}_{kind}_{minutes}" for b in ("last", "ha", "lgbm")
                         for kind in ("mae", "rmse", "mape") for minutes in (15, 30, 60)]  # fmt: skip
        metric_names += [f"coverage_{minutes}" for minutes in (15, 30, 60)]
        return {
            **{k: m.get(k) for k in IDENTITY_KEYS},
            "summary": (
                f"MAE 15/30/60 min {m['mae_15']:.2f}/{m['mae_30']:.2f}/{m['mae_60']:.2f} mph vs copy-last "
                f"{m['baseline_last_mae_15']:.2f}/{m['baseline_last_mae_30']:.2f}/"
                f"{m['baseline_last_mae_60']:.2f}, historical average {m['baseline_ha_mae_15']:.2f}/"
                f"{m['baseline_ha_mae_30']:.2f}/{m['baseline_ha_mae_60']:.2f}"
                + (
                    f", plain LightGBM {m['baseline_lgbm_mae_15']:.2f}/{m['baseline_lgbm_mae_30']:.2f}/"
                    f"{m['baseline_lgbm_mae_60']:.2f}"
                    if "baseline_lgbm_mae_15" in m
                    else ""
                )
            ),  # fmt: skip
            "metrics": {name: m.get(name) for name in metric_names},
            "features": list(FEATURES),
            "sensors": len(self.sensor_ids),
            # The training file's wall-clock times carry no zone: its first and last days, which need none.
            "time_range": [str(moment)[:10] for moment in m.get("time_range") or []],
            "horizons_minutes": [h * 5 for h in HORIZONS],
            "levels": LEVELS,
        }
