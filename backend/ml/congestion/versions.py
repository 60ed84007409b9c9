"""A new version of the congestion model, trained from stored readings and compared with the served one (the
champion) on the very same test windows.

`speeds_frame` lays readings on the wide table `train_congestion` reads; `train_congestion_version` trains, saves
with `save_congestion`, and adds to the metadata what it was trained on and the comparison: MAE at 15/30/60
minutes of the new version, the champion, copy-last and the historical average over the test windows of the
chronological split. Both models answer through their public predict path, from request bodies built of each
window's 12 readings and its neighbours'; the new version is the served one, whose final fit (on the training and
validation windows) saw no reading of the test windows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backend.ml.artifacts import METADATA_FILE, write_json_atomic
from backend.ml.congestion.artifacts import save_congestion
from backend.ml.congestion.features import HORIZONS, MIN_PROFILE_WEEKS, STEPS_PER_DAY, WINDOW, Profiles, window_stats
from backend.ml.congestion.loaders import STEP, check_sensors
from backend.ml.congestion.model import CongestionModel
from backend.ml.congestion.training import chronological_split, train_congestion
from backend.ml.errors import DataFileError, InvalidRow

MIN_STEPS = 2 * STEPS_PER_DAY  # two days: the 70/10/20 split then holds a few hours of validation and test windows
MIN_SENSORS = 2  # the neighbour features need another sensor
MAX_COMPARED_WINDOWS = 100_000  # beyond this, every k-th test window end (~20 s a model on the predict path)
MINUTES = [str(h * 5) for h in HORIZONS]


def _utc(moment: datetime) -> datetime:
    """A naive UTC time (a naive time is taken as UTC already)."""
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo is not None else moment


def speeds_frame(readings: Iterable[tuple[str, datetime, float]], since: datetime, until: datetime) -> pd.DataFrame:
    """The wide speed table of `loaders.read_speeds` from (sensor_id, timestamp, speed_mph) readings: the 5-minute
    UTC grid from `since` (rounded up) to `until` (rounded down), both included, as a naive index; one column per
    sensor with a reading on it (sorted ids); each reading on its nearest step (the mean of several), 0 = missing."""
    start, end = pd.Timestamp(_utc(since)).ceil(STEP), pd.Timestamp(_utc(until)).floor(STEP)
    if end < start:
        raise DataFileError(f"no five-minute step between {since.isoformat()} and {until.isoformat()}")
    steps = int((end - start) // STEP) + 1
    index = pd.date_range(start, periods=steps, freq=STEP, name="timestamp")
    sensors: list[str] = []
    moments: list[datetime] = []
    speeds: list[float] = []
    for sensor, moment, speed in readings:
        sensors.append(str(sensor))
        moments.append(_utc(moment))
        speeds.append(float(speed))
    if not sensors:
        return pd.DataFrame(index=index, dtype=np.float64)
    slot = np.rint((np.array(moments, dtype="datetime64[us]") - start.to_datetime64()) / STEP.to_timedelta64())
    value = np.asarray(speeds, dtype=np.float64)
    keep = (slot >= 0) & (slot < steps) & np.isfinite(value) & (value > 0)  # 0 mph is the layout's "missing"
    ids, column = np.unique(np.asarray(sensors, dtype=object)[keep].astype(str), return_inverse=True)
    sums = np.zeros((steps, len(ids)))
    counts = np.zeros((steps, len(ids)))
    np.add.at(sums, (slot[keep].astype(np.int64), column), value[keep])
    np.add.at(counts, (slot[keep].astype(np.int64), column), 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        table = np.where(counts > 0, sums / counts, 0.0)
    return pd.DataFrame(table, index=index, columns=[str(s) for s in ids])


def check_frame(frame: pd.DataFrame, sensors: pd.DataFrame) -> None:
    """DataFileError naming the numbers when the table cannot train a version worth comparing."""
    steps = len(frame)
    if steps < MIN_STEPS:
        span = f" ({frame.index[0]} to {frame.index[-1]})" if steps else ""
        raise DataFileError(f"too few readings to train a version: {steps} five-minute steps{span}, "
                            f"{steps / STEPS_PER_DAY:.1f} days; at least {MIN_STEPS} ({MIN_STEPS // STEPS_PER_DAY} "
                            "days) are needed")  # fmt: skip
    reporting = int((frame.to_numpy() > 0).any(axis=0).sum())
    if reporting < MIN_SENSORS:
        raise DataFileError(f"too few sensors to train a version: {reporting} with readings in the range "
                            f"({frame.shape[1]} columns); at least {MIN_SENSORS} are needed")  # fmt: skip
    check_sensors(frame, sensors, where="the readings")


def _readings_by_sensor(frame: pd.DataFrame, first: int, last: int) -> list[list[dict[str, Any]]]:
    """Each column's readings of steps first..last as a request body gives them (ISO time, mph, 0 = missing)."""
    stamps = [moment.isoformat() for moment in frame.index[first : last + 1]]
    block = frame.to_numpy(dtype=np.float64)[first : last + 1]
    return [
        [{"timestamp": stamp, "speed_mph": speed} for stamp, speed in zip(stamps, block[:, c].tolist(), strict=True)]
        for c in range(block.shape[1])
    ]


def _mae(predicted: np.ndarray, actual: np.ndarray) -> float | None:
    return round(float(np.mean(np.abs(predicted - actual))), 4) if len(actual) else None


def compare(
    frame: pd.DataFrame, new: CongestionModel, champion: CongestionModel | None, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """MAE by horizon of both models, copy-last and the historical average on the same test windows."""
    ids = list(frame.columns)
    column = {s: c for c, s in enumerate(ids)}
    split = chronological_split(len(frame))
    models = [("new", new)] + ([("champion", champion)] if champion is not None else [])
    known = [s for s in ids if all(s in model.index for _, model in models)]
    unknown = len(ids) - len(known)
    stride = max(1, math.ceil(len(split.test) * len(known) / MAX_COMPARED_WINDOWS))
    ends = split.test[::stride]
    first, last = int(ends[0]) - (WINDOW - 1), int(ends[-1])
    readings = _readings_by_sensor(frame, first, last)
    nearby = {
        s: [m for m in dict.fromkeys(n for _, model in models for n in model.neighbours.get(s, [])) if m in column]
        for s in known
    }  # every model's neighbours that have readings: each model takes its own from the body
    bodies, where = [], []
    for t in ends.tolist():
        a, b = t - (WINDOW - 1) - first, t + 1 - first
        for s in known:
            bodies.append({"sensor_id": s, "readings": readings[column[s]][a:b],
                           "neighbour_readings": {m: readings[column[m]][a:b] for m in nearby[s]}})  # fmt: skip
            where.append((t, column[s]))
    answers = {role: model.predict_many(bodies) for role, model in models}
    answered = [all(not isinstance(answers[role][i], InvalidRow) for role, _ in models) for i in range(len(bodies))]
    t = np.array([w[0] for w, ok in zip(where, answered, strict=True) if ok], dtype=np.int64)
    s = np.array([w[1] for w, ok in zip(where, answered, strict=True) if ok], dtype=np.int64)
    forecasts = {
        role: np.array(
            [a.speeds for a, ok in zip(answers[role], answered, strict=True) if ok], dtype=np.float64
        ).reshape(-1, len(HORIZONS))
        for role, _ in models
    }

    # The baselines of train_congestion: profiles and last readings from the frame, fitted on the training part.
    values = frame.to_numpy(dtype=np.float64)
    speeds = np.where(values > 0, values, np.nan)
    stamps = pd.DatetimeIndex(frame.index)
    weekday, slot = stamps.day_of_week.to_numpy(), (stamps.hour * 12 + stamps.minute // 5).to_numpy()
    fit_until = int(split.train[-1]) + 1
    averages = Profiles.fit(speeds[:fit_until], weekday[:fit_until], slot[:fit_until], smooth=0)
    windows = np.lib.stride_tricks.sliding_window_view(speeds, WINDOW, axis=0)
    latest = window_stats(windows[t - (WINDOW - 1), s]).last if len(t) else np.empty(0)
    scored: dict[str, int] = {}
    figures: dict[str, dict[str, float | None]] = {role: {} for role in [*forecasts, "copy_last", "historical_average"]}
    for k, (horizon, minutes) in enumerate(zip(HORIZONS, MINUTES, strict=True)):
        actual = speeds[t + horizon, s] if len(t) else np.empty(0)
        every_day = averages.every_day(s, slot[t + horizon])
        ha = averages.table[s, weekday[t + horizon], slot[t + horizon]].astype(np.float64)
        predicted = {role: values[:, k] for role, values in forecasts.items()}
        predicted["copy_last"] = np.where(np.isnan(latest), every_day, latest)
        predicted["historical_average"] = np.where(np.isnan(ha), every_day, ha)
        mask = ~np.isnan(actual) & np.all([np.isfinite(p) for p in predicted.values()], axis=0)
        scored[minutes] = int(mask.sum())
        for role, values in predicted.items():
            figures[role][minutes] = _mae(values[mask], actual[mask])

    left_refused = len(bodies) - len(t)
    comparison: dict[str, Any] = {
        "test_windows": {
            "time_range": [str(frame.index[int(ends[0])]), str(frame.index[int(ends[-1])])],
            "ends": len(split.test),
            "ends_compared": len(ends),  # every `stride`-th end, when there are more than MAX_COMPARED_WINDOWS
            "stride": stride,
        },
        "sensors": {"in_readings": len(ids), "compared": len(known), "unknown_to_champion": unknown},
        "windows": len(t),
        "left_out": {
            "windows": unknown * len(ends) + left_refused,
            "of_sensors_unknown_to_champion": unknown * len(ends),
            "refused": left_refused,
        },
        "scored": scored,
        "new": {"version": new.version, "mae": figures["new"]},
        **({"champion": {"version": champion.version, "mae": figures["champion"]}} if champion is not None else {}),
        "copy_last": {"mae": figures["copy_last"]},
        "historical_average": {"mae": figures["historical_average"]},
    }
    notes = [
        "new: the served version through its predict path (its final fit, on the training and validation windows, "
        "saw no reading of these test windows); baselines as in training: copy-last and the historical average of "
        "the training windows' readings",
    ]
    if champion is not None:
        unknown_note = f"; the windows of the {unknown} sensors it does not know are left out of every figure"
        notes.append(
            "champion: through its predict path from the same request bodies" + (unknown_note if unknown else "")
        )
        seen = _seen_until(champion.metadata)
        if seen is not None and seen >= stamps[first]:
            notes.append(f"the champion's fit saw readings up to {seen}, inside these test windows (from "
                         f"{stamps[first]}): its figures on them flatter it")  # fmt: skip
    comparison["notes"] = notes
    for line in describe_comparison(comparison):
        log(line)
    return comparison


def _seen_until(metadata: dict[str, Any]) -> pd.Timestamp | None:
    """The last reading a model trained by `train_congestion` learnt from: the split of its time range is
    deterministic, and its final fit saw the training and validation windows (targets included)."""
    try:
        start, end = (pd.Timestamp(moment) for moment in metadata["time_range"])
        split = chronological_split(int((end - start) / STEP) + 1)
    except (KeyError, TypeError, ValueError, IndexError):  # no time range, or none it could have been trained on
        return None
    return start + STEP * int(split.valid[-1] + max(HORIZONS))


def describe_comparison(comparison: dict[str, Any]) -> list[str]:
    """The comparison as a small table, for logs and the training command."""
    first, last = comparison["test_windows"]["time_range"]
    lines = [
        f"test windows {first} to {last}: {comparison['windows']} windows of {comparison['sensors']['compared']} "
        f"sensors ({comparison['left_out']['windows']} left out)",
        "MAE (mph)           " + " ".join(f"{m + ' min':>8}" for m in MINUTES),
    ]
    for role, name in (("new", "new"), ("champion", "champion"), ("copy_last", "copy-last"),
                       ("historical_average", "historical avg")):  # fmt: skip
        if role in comparison:
            values = comparison[role]["mae"]
            lines.append(f"{name:<20}" + " ".join("       -" if values[m] is None else f"{values[m]:>8.3f}"
                                                  for m in MINUTES))  # fmt: skip
    lines.append("scored targets      " + " ".join(f"{comparison['scored'][m]:>8}" for m in MINUTES))
    return lines


def train_congestion_version(
    frame: pd.DataFrame,
    sensors: pd.DataFrame,
    neighbours: dict[str, list[str]],
    *,
    champion: CongestionModel | None,
    out: Path,
    data_source: str,
    training_data: dict[str, Any],
    log: Callable[[str], None] = print,
    seed: int = 42,
) -> dict[str, Any]:
    """Train on the wide speed table (see `speeds_frame`), save into `out` (an empty folder the caller made), compare
    with `champion`; returns the metadata, which also holds `training_data` (with the time range, steps, sensors and
    readings added) and `comparison`."""
    check_frame(frame, sensors)
    result = train_congestion(frame, neighbours, seed=seed, log=log)
    metadata = save_congestion(result, out, frame=frame, sensors=sensors, neighbours=neighbours,
                               data_source=data_source)  # fmt: skip
    values = frame.to_numpy()
    metadata["training_data"] = {
        **training_data,
        "time_range": [str(frame.index[0]), str(frame.index[-1])],
        "steps": len(frame),
        "sensors": int((values > 0).any(axis=0).sum()),
        "readings": int((values > 0).sum()),
    }
    comparison = compare(frame, CongestionModel.load(out), champion, log)
    days = metadata["split_windows"]["train"] / STEPS_PER_DAY
    if days < 7 * MIN_PROFILE_WEEKS:
        comparison["notes"].append(f"the training windows span {days:.1f} days: a weekday's profile needs "
                                   f"{MIN_PROFILE_WEEKS} weeks, so the profiles are every day's means")  # fmt: skip
    metadata["comparison"] = comparison
    write_json_atomic(out / METADATA_FILE, metadata)
    return metadata
