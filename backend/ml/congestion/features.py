"""The one congestion feature encoding, for training, evaluation and the in-process predictor alike.

A *window* is a sensor's last 12 five-minute readings, oldest first, NaN where missing (a 0 of the METR-LA layout).
`window_stats` summarises windows; `feature_matrix` turns those summaries, the sensor's historical profile, its
free-flow speed and its neighbours' summaries (NaN when absent) into the model's rows, one per horizon.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

WINDOW = 12
HORIZONS = (3, 6, 12)  # steps of 5 minutes: 15, 30 and 60 minutes ahead
STEPS_PER_DAY = 288
MIN_PROFILE_WEEKS = 2
FEATURES: tuple[str, ...] = (
    "horizon_min",
    "last",
    "minutes_since_reading",
    "change_15",
    "change_55",
    "mean_60",
    "min_60",
    "missing_60",
    "slot_target",
    "weekday_target",
    "profile_now",
    "profile_target",
    "profile_change",
    "anomaly",
    "free_flow",
    "last_to_free_flow",
    "neighbours_last",
    "neighbours_change_15",
    "neighbours_anomaly",
)
NEIGHBOUR_FEATURES = ("neighbours_last", "neighbours_change_15", "neighbours_anomaly")


@dataclass
class WindowStats:
    last: np.ndarray  # the latest real reading in the window (NaN: none)
    staleness: np.ndarray  # steps since that reading (WINDOW: none in the window)
    lag3: np.ndarray  # the latest real reading at least 3 steps before the end
    first: np.ndarray  # the oldest real reading
    mean: np.ndarray
    minimum: np.ndarray
    missing: np.ndarray


def window_stats(windows: np.ndarray) -> WindowStats:
    """Summaries of windows shaped (..., 12), NaN = missing."""
    valid = ~np.isnan(windows)
    positions = np.arange(WINDOW)
    latest = np.where(valid, positions, -1).max(axis=-1)
    earliest = np.where(valid, positions, WINDOW).min(axis=-1)
    latest3 = np.where(valid[..., : WINDOW - 3], positions[: WINDOW - 3], -1).max(axis=-1)
    has = latest >= 0
    last = np.where(has, np.take_along_axis(windows, np.maximum(latest, 0)[..., None], -1)[..., 0], np.nan)
    lag3 = np.where(latest3 >= 0, np.take_along_axis(windows, np.maximum(latest3, 0)[..., None], -1)[..., 0], np.nan)
    first = np.where(has, np.take_along_axis(windows, np.minimum(earliest, WINDOW - 1)[..., None], -1)[..., 0], np.nan)
    count = valid.sum(axis=-1)
    filled = np.where(valid, windows, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, filled.sum(axis=-1) / count, np.nan)
    minimum = np.where(count > 0, np.where(valid, windows, np.inf).min(axis=-1), np.nan)
    return WindowStats(last, np.where(has, WINDOW - 1 - latest, WINDOW), lag3, first, mean, minimum, WINDOW - count)


def feature_matrix(
    stats: WindowStats,
    horizon_steps: np.ndarray,
    slot_now: np.ndarray,
    weekday_now: np.ndarray,
    profile_now: np.ndarray,
    profile_target: np.ndarray,
    free_flow: np.ndarray,
    neighbours_last: np.ndarray,
    neighbours_change: np.ndarray,
    neighbours_anomaly: np.ndarray,
) -> np.ndarray:
    """One row per (window, horizon), all arguments broadcast to one length; FEATURES order."""
    steps_ahead = slot_now + horizon_steps
    slot_target = steps_ahead % STEPS_PER_DAY
    weekday_target = (weekday_now + steps_ahead // STEPS_PER_DAY) % 7
    columns = (
        horizon_steps * 5.0,
        stats.last,
        stats.staleness * 5.0,
        stats.last - stats.lag3,
        stats.last - stats.first,
        stats.mean,
        stats.minimum,
        stats.missing,
        slot_target,
        weekday_target,
        profile_now,
        profile_target,
        profile_target - profile_now,
        stats.last - profile_now,
        free_flow,
        stats.last / free_flow,
        neighbours_last,
        neighbours_change,
        neighbours_anomaly,
    )
    return np.column_stack(np.broadcast_arrays(*columns)).astype(np.float64)


def base_speed(stats: WindowStats, profile_now: np.ndarray) -> np.ndarray:
    """What the model predicts a change from: the last reading, else (no reading in the window) the profile."""
    return np.where(np.isnan(stats.last), profile_now, stats.last)


class Profiles:
    """Each sensor's historical mean speed by weekday and 5-minute slot (index 7: every day), fit on training
    readings only; a slot never seen on that weekday falls back to every day's, then to the sensor's mean."""

    def __init__(self, table: np.ndarray) -> None:
        self.table = table.astype(np.float32)  # (sensors, 8, 288)
        with warnings.catch_warnings():  # a sensor with no reading at all: its mean is NaN, filled below
            warnings.simplefilter("ignore", RuntimeWarning)
            overall = np.nanmean(table[:, 7], axis=1)
        self.filled = np.where(np.isnan(table), table[:, 7:8, :], table)
        self.filled = np.where(np.isnan(self.filled), overall[:, None, None], self.filled)
        self.filled = np.nan_to_num(self.filled, nan=float(np.nanmean(overall)) if np.isfinite(overall).any() else 0)

    @classmethod
    def fit(cls, speeds: np.ndarray, weekday: np.ndarray, slot: np.ndarray, smooth: int = 2) -> Profiles:
        """speeds (T, S) with NaN = missing; weekday and slot (T,) of each row."""
        sensors = speeds.shape[1]
        sums = np.zeros((sensors, 8, STEPS_PER_DAY))
        counts = np.zeros((sensors, 8, STEPS_PER_DAY))
        valid = ~np.isnan(speeds)
        values = np.where(valid, speeds, 0.0)
        for day in range(7):
            rows = weekday == day
            np.add.at(sums[:, day, :].T, slot[rows], values[rows])
            np.add.at(counts[:, day, :].T, slot[rows], valid[rows])
        sums[:, 7], counts[:, 7] = sums[:, :7].sum(axis=1), counts[:, :7].sum(axis=1)
        kernel = np.ones(2 * smooth + 1)
        padded_sums = np.concatenate([sums[..., -smooth:], sums, sums[..., :smooth]], axis=-1)
        padded_counts = np.concatenate([counts[..., -smooth:], counts, counts[..., :smooth]], axis=-1)
        smooth_sums = np.apply_along_axis(lambda r: np.convolve(r, kernel, "valid"), -1, padded_sums)
        smooth_counts = np.apply_along_axis(lambda r: np.convolve(r, kernel, "valid"), -1, padded_counts)
        with np.errstate(invalid="ignore", divide="ignore"):
            table = np.where(smooth_counts > 0, smooth_sums / smooth_counts, np.nan)
        # One week holds one day of each weekday: a weekday's slot seen in fewer than two weeks is that day's noise,
        # not a pattern, and takes every day's mean instead (the NaN `filled` falls back on).
        seen_weeks = smooth_counts[:, :7] / (2 * smooth + 1)  # readings over the slots averaged: weeks, less gaps
        table[:, :7] = np.where(seen_weeks > MIN_PROFILE_WEEKS - 0.5, table[:, :7], np.nan)
        return cls(table)

    def at(self, sensor: np.ndarray, weekday: np.ndarray, slot: np.ndarray) -> np.ndarray:
        return self.filled[sensor, weekday, slot].astype(np.float64)

    def every_day(self, sensor: np.ndarray, slot: np.ndarray) -> np.ndarray:
        return self.filled[sensor, 7, slot].astype(np.float64)


NAN = float("nan")


def summarise(window: list[float]) -> tuple[float, float, float, float, float, float, float]:
    """`window_stats` of one window in plain Python (the single-prediction path: numpy costs more than the work
    on 12 numbers). Returns (last, staleness, lag3, first, mean, minimum, missing); a test holds the two equal."""
    values = [v for v in window if v == v]  # v == v: not NaN
    if not values:
        return NAN, float(WINDOW), NAN, NAN, NAN, NAN, float(WINDOW)
    last, lag3 = latest_and_lag3(window)
    latest = next(i for i in range(WINDOW - 1, -1, -1) if window[i] == window[i])
    return (
        last,
        float(WINDOW - 1 - latest),
        lag3,
        values[0],
        sum(values) / len(values),
        min(values),
        float(WINDOW - len(values)),
    )


def latest_and_lag3(window: list[float]) -> tuple[float, float]:
    """`summarise(window)`'s (last, lag3), all a neighbour contributes."""
    last = lag3 = NAN
    for i in range(WINDOW - 1, -1, -1):
        value = window[i]
        if value == value:
            if last != last:
                last = value
            if i < WINDOW - 3:
                lag3 = value
                break
    return last, lag3


def feature_rows(
    summary: tuple[float, ...],
    slot_now: int,
    weekday_now: int,
    profile_now: float,
    profile_targets: tuple[float, ...],
    free_flow: float,
    neighbours: tuple[float, float, float],
) -> list[list[float]]:
    """`feature_matrix` for one window and every horizon, in plain Python; same FEATURES order."""
    last, staleness, lag3, first, mean, minimum, missing = summary
    rows = []
    for horizon, profile_target in zip(HORIZONS, profile_targets, strict=True):
        ahead = slot_now + horizon
        rows.append([
            horizon * 5.0, last, staleness * 5.0, last - lag3, last - first, mean, minimum, missing,
            float(ahead % STEPS_PER_DAY), float((weekday_now + ahead // STEPS_PER_DAY) % 7), profile_now,
            profile_target, profile_target - profile_now, last - profile_now, free_flow, last / free_flow,
            *neighbours,
        ])  # fmt: skip
    return rows
