"""Training and evaluation of the congestion model by the DCRNN protocol.

Windows of 12 readings in; targets 3, 6 and 12 steps ahead (15/30/60 min); a chronological 70/10/20 split of the
windows with gaps so that no validation or test window starts before the previous part's last window ends; masked
MAE/RMSE/MAPE (a target of 0 is missing and never scored) beside two baselines on the same test windows: copy-last
(the last non-zero reading of the window) and historical average (the sensor's mean at the target's weekday and
5-minute slot on the training part, else its mean at that slot), and a plain LightGBM reference trained in the same
run (the sensor's own 12 readings, slot of the day, weekday and sensor id: no graph, no profile). The uncertainty
band's offsets come from the validation windows' errors (backend.ml.congestion.band), its coverage from the test
windows. Then a final fit on train+validation for serving.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from backend.ml.congestion.band import apply_band, band_bin, band_metadata, coverage, fit_offsets
from backend.ml.congestion.features import (
    FEATURES,
    HORIZONS,
    NEIGHBOUR_FEATURES,
    WINDOW,
    Profiles,
    base_speed,
    feature_matrix,
    window_stats,
)
from backend.ml.errors import DataFileError

PARAMS: dict[str, Any] = {
    "objective": "l1",  # the metric's own
    "learning_rate": 0.2,
    "num_leaves": 31,
    "min_data_in_leaf": 200,
    "feature_fraction": 0.9,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "deterministic": True,
    "force_row_wise": True,
    "num_threads": 2,
    "verbosity": -1,
}
MAX_ROUNDS = 200
EARLY_STOPPING_ROUNDS = 30
MAX_TRAIN_ROWS = 600_000
NEIGHBOUR_DROPOUT = 0.2  # share of training rows without neighbours: the model must answer without them


@dataclass
class Split:
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray


def chronological_split(steps: int, shares: tuple[float, float] = (0.7, 0.1)) -> Split:
    """Window end indices t (input t-11..t, targets up to t+12), split 70/10/20 in time; each part starts only
    after the previous part's last window (inputs and targets) has ended."""
    ends = np.arange(WINDOW - 1, steps - max(HORIZONS))
    if len(ends) < 100:
        raise DataFileError(f"too few readings to train: {steps} five-minute steps (at least 123 are needed)")
    n_train, n_valid = int(len(ends) * shares[0]), int(len(ends) * shares[1])
    gap = WINDOW - 1 + max(HORIZONS)
    train = ends[:n_train]
    valid = ends[(ends > train[-1] + gap) & (ends <= ends[n_train + n_valid - 1])]
    test = ends[ends > valid[-1] + gap]
    return Split(train, valid, test)


class Prepared:
    """Window summaries of every (time, sensor) of a speed matrix, and its neighbours' aggregates."""

    def __init__(self, speeds: np.ndarray, weekday: np.ndarray, slot: np.ndarray, neighbours: list[list[int]]):
        self.speeds = speeds  # (T, S), NaN = missing
        self.weekday, self.slot = weekday, slot
        windows = np.lib.stride_tricks.sliding_window_view(speeds, WINDOW, axis=0)  # (T-11, S, 12)
        self.stats = window_stats(windows)  # arrays (T-11, S), row i = window ending at t = i + 11
        width = max((len(n) for n in neighbours), default=0)
        self.neighbour_table = np.full((len(neighbours), max(width, 1)), -1)  # (sensors, k), -1 = none
        for sensor, members in enumerate(neighbours):
            self.neighbour_table[sensor, : len(members)] = members

    def rows(
        self, ends: np.ndarray, profiles: Profiles, free_flow: np.ndarray, horizon: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Feature rows, base speeds and targets (NaN = missing) of every sensor at the window ends given."""
        sensors = self.speeds.shape[1]
        t = np.repeat(ends, sensors)
        s = np.tile(np.arange(sensors), len(ends))
        i = t - (WINDOW - 1)
        stats = window_stats_rows(self.stats, i, s)
        profile_now = profiles.at(s, self.weekday[t], self.slot[t])
        target_t = t + horizon
        profile_target = profiles.at(s, self.weekday[target_t], self.slot[target_t])
        nbr_last, nbr_change, nbr_anomaly = self.neighbour_aggregates(i, s, profiles, t)
        X = feature_matrix(stats, np.full(len(t), horizon), self.slot[t], self.weekday[t], profile_now,
                           profile_target, free_flow[s], nbr_last, nbr_change, nbr_anomaly)  # fmt: skip
        return X, base_speed(stats, profile_now), self.speeds[target_t, s]

    def neighbour_aggregates(
        self, i: np.ndarray, s: np.ndarray, profiles: Profiles, t: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        members = self.neighbour_table[s]
        present = members >= 0
        m = np.maximum(members, 0)
        last = np.where(present, self.stats.last[i[:, None], m], np.nan)
        lag3 = np.where(present, self.stats.lag3[i[:, None], m], np.nan)
        their_profile = profiles.at(m, self.weekday[t][:, None], self.slot[t][:, None])
        with np.errstate(invalid="ignore"), _quiet():
            return (np.nanmean(last, axis=1), np.nanmean(last - lag3, axis=1),
                    np.nanmean(last - their_profile, axis=1))  # fmt: skip


@contextmanager
def _quiet() -> Iterator[None]:
    """nanmean / nanpercentile of an all-NaN row is NaN (no data there): expected, not worth a warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def window_stats_rows(stats: Any, i: np.ndarray, s: np.ndarray) -> Any:
    return type(stats)(**{name: getattr(stats, name)[i, s] for name in stats.__dataclass_fields__})


def masked_metrics(predicted: np.ndarray, actual: np.ndarray) -> dict[str, float]:
    """MAE, RMSE and MAPE (%) over the targets that are not missing (0 / NaN never scored)."""
    mask = ~np.isnan(actual) & (actual > 0) & ~np.isnan(predicted)
    error = predicted[mask] - actual[mask]
    return {
        "mae": float(np.mean(np.abs(error))),
        "rmse": float(np.sqrt(np.mean(error**2))),
        "mape": float(np.mean(np.abs(error) / actual[mask]) * 100),
        "scored": int(mask.sum()),
    }


@dataclass
class CongestionTraining:
    booster: lgb.Booster
    profiles: Profiles
    free_flow: np.ndarray
    metrics: dict[str, Any]
    table: list[dict[str, Any]]
    band: dict[str, Any]


REFERENCE_FEATURES = (*(f"lag_{i}" for i in range(WINDOW)), "slot", "weekday", "sensor")


def plain_reference(
    prepared: Prepared, split: Split, params: dict[str, Any], horizon: int, rng: np.random.Generator
) -> np.ndarray:
    """The plain LightGBM's forecasts of the test windows (in `Prepared.rows` order): trained on the training
    windows, stopped early on the validation ones, from the sensor's own readings, the time and the sensor id."""
    speeds = prepared.speeds
    sensors = speeds.shape[1]
    windows = np.lib.stride_tricks.sliding_window_view(speeds, WINDOW, axis=0)

    def rows(ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        t, s = np.repeat(ends, sensors), np.tile(np.arange(sensors), len(ends))
        X = np.column_stack([windows[t - (WINDOW - 1), s], prepared.slot[t], prepared.weekday[t], s])
        return X.astype(np.float64), speeds[t + horizon, s]

    def dataset(ends: np.ndarray) -> lgb.Dataset:
        stride = max(1, int(np.ceil(len(ends) * sensors / (MAX_TRAIN_ROWS // len(HORIZONS)))))
        X, y = rows(ends[rng.integers(stride) :: stride])
        keep = ~np.isnan(y)
        return lgb.Dataset(X[keep], label=y[keep], feature_name=list(REFERENCE_FEATURES),
                           categorical_feature=["sensor"], free_raw_data=False)  # fmt: skip

    train, valid = dataset(split.train), dataset(split.valid)
    booster = lgb.train(params, train, num_boost_round=MAX_ROUNDS, valid_sets=[valid],
                        callbacks=[lgb.early_stopping(EARLY_STOPPING_ROUNDS, verbose=False)])  # fmt: skip
    X, _ = rows(split.test)
    return booster.predict(X, num_iteration=booster.best_iteration or None)


def _calendar(index: pd.DatetimeIndex) -> tuple[np.ndarray, np.ndarray]:
    return index.day_of_week.to_numpy(), (index.hour * 12 + index.minute // 5).to_numpy()


def free_flow_speeds(speeds: np.ndarray) -> np.ndarray:
    """Each sensor's free-flow speed: the 85th percentile of its readings (the traffic engineers' measure)."""
    with _quiet():
        flow = np.nanpercentile(speeds, 85, axis=0)
    return np.where(np.isnan(flow), np.nanmedian(flow) if np.isfinite(flow).any() else 60.0, flow)


def _training_set(
    prepared: Prepared, ends: np.ndarray, profiles: Profiles, free_flow: np.ndarray, rng: np.random.Generator
) -> lgb.Dataset:
    per_horizon = MAX_TRAIN_ROWS // len(HORIZONS)
    sensors = prepared.speeds.shape[1]
    stride = max(1, int(np.ceil(len(ends) * sensors / per_horizon)))
    parts_X, parts_y = [], []
    for horizon in HORIZONS:
        chosen = ends[rng.integers(stride) :: stride]
        X, base, y = prepared.rows(chosen, profiles, free_flow, horizon)
        keep = ~np.isnan(y) & ~np.isnan(base)
        parts_X.append(X[keep])
        parts_y.append((y - base)[keep])
    X = np.vstack(parts_X)
    dropped = rng.random(len(X)) < NEIGHBOUR_DROPOUT
    for name in NEIGHBOUR_FEATURES:
        X[dropped, FEATURES.index(name)] = np.nan
    return lgb.Dataset(X, label=np.concatenate(parts_y), feature_name=list(FEATURES), free_raw_data=False)


def _predict(booster: lgb.Booster, X: np.ndarray, base: np.ndarray, num_iteration: int | None = None) -> np.ndarray:
    return np.clip(base + booster.predict(X, num_iteration=num_iteration), 0.0, 120.0)


def train_congestion(
    frame: pd.DataFrame,
    neighbours: dict[str, list[str]],
    *,
    seed: int = 42,
    log: Callable[[str], None] = print,
) -> CongestionTraining:
    """frame: the wide speed table (timestamp index, sensor columns, 0 = missing)."""
    ids = list(frame.columns)
    index = {sensor: i for i, sensor in enumerate(ids)}
    members = [[index[m] for m in neighbours.get(sensor, []) if m in index] for sensor in ids]
    speeds = frame.to_numpy(dtype=np.float64)
    speeds = np.where(speeds > 0, speeds, np.nan)
    weekday, slot = _calendar(pd.DatetimeIndex(frame.index))
    split = chronological_split(len(frame))
    prepared = Prepared(speeds, weekday, slot, members)
    rng = np.random.default_rng(seed)
    params = {**PARAMS, "seed": seed}

    fit_until = split.train[-1] + 1  # profiles and free-flow speeds see no reading after the training windows
    profiles = Profiles.fit(speeds[:fit_until], weekday[:fit_until], slot[:fit_until])
    averages = Profiles.fit(speeds[:fit_until], weekday[:fit_until], slot[:fit_until], smooth=0)
    free_flow = free_flow_speeds(speeds[:fit_until])
    started = time.perf_counter()
    train_set = _training_set(prepared, split.train, profiles, free_flow, rng)
    valid_set = _training_set(prepared, split.valid, profiles, free_flow, rng)
    booster = lgb.train(params, train_set, num_boost_round=MAX_ROUNDS, valid_sets=[valid_set],
                        callbacks=[lgb.early_stopping(EARLY_STOPPING_ROUNDS, verbose=False)])  # fmt: skip
    best = int(booster.best_iteration or MAX_ROUNDS)
    log(f"trained on {train_set.num_data()} rows ({len(split.train)} windows x {len(ids)} sensors, sampled), "
        f"best iteration {best}, {time.perf_counter() - started:.1f}s")  # fmt: skip

    metrics: dict[str, Any] = {}
    table = []
    offsets: dict[int, list[list[float]]] = {}
    for horizon in HORIZONS:
        minutes = horizon * 5
        Xv, base_v, y_v = prepared.rows(split.valid, profiles, free_flow, horizon)
        offsets[minutes] = fit_offsets(y_v - _predict(booster, Xv, base_v, best), _bins(Xv))
        X, base, y = prepared.rows(split.test, profiles, free_flow, horizon)
        predicted = _predict(booster, X, base, best)
        model = masked_metrics(predicted, y)
        low, high = apply_band(predicted, offsets[minutes], _bins(X))
        covered = coverage(low, high, y)
        reference = masked_metrics(plain_reference(prepared, split, params, horizon, rng), y)
        t = np.repeat(split.test, len(ids))
        s = np.tile(np.arange(len(ids)), len(split.test))
        last = X[:, FEATURES.index("last")]
        every_day = averages.every_day(s, slot[t + horizon])
        copy_last = masked_metrics(np.where(np.isnan(last), every_day, last), y)
        with _quiet():
            ha = averages.table[s, weekday[t + horizon], slot[t + horizon]].astype(np.float64)
        historical = masked_metrics(np.where(np.isnan(ha), every_day, ha), y)
        compared = (("", model), ("baseline_last_", copy_last), ("baseline_ha_", historical),
                    ("baseline_lgbm_", reference))  # fmt: skip
        for name, value in compared:
            for metric in ("mae", "rmse", "mape"):
                metrics[f"{name}{metric}_{minutes}"] = round(value[metric], 4)
        metrics[f"coverage_{minutes}"] = round(covered, 4)
        table.append({"minutes": minutes, "model": model, "copy_last": copy_last, "historical_average": historical,
                      "plain_lgbm": reference, "coverage": covered})  # fmt: skip
        log(
            f"{minutes:>2} min: model MAE {model['mae']:.3f} RMSE {model['rmse']:.3f} MAPE {model['mape']:.2f}% | "
            f"copy-last MAE {copy_last['mae']:.3f} | historical average MAE {historical['mae']:.3f} | plain "
            f"LightGBM MAE {reference['mae']:.3f} | 10-90% band covers {covered:.1%} ({model['scored']} scored)"
        )  # fmt: skip

    serve_until = split.valid[-1] + 1
    serving_profiles = Profiles.fit(speeds[:serve_until], weekday[:serve_until], slot[:serve_until])
    serving_free_flow = free_flow_speeds(speeds[:serve_until])
    ends = np.concatenate([split.train, split.valid])
    final_set = _training_set(prepared, ends, serving_profiles, serving_free_flow, rng)
    final = lgb.train(params, final_set, num_boost_round=best)
    log(f"final fit on train+validation: {final_set.num_data()} rows, {best} trees")
    metrics.update(
        split_windows={"train": len(split.train), "valid": len(split.valid), "test": len(split.test)},
        best_iteration=best,
    )
    return CongestionTraining(final, serving_profiles, serving_free_flow, metrics, table, band_metadata(offsets))


def _bins(X: np.ndarray) -> np.ndarray:
    return band_bin(X[:, FEATURES.index("last")], X[:, FEATURES.index("free_flow")])


COLUMNS = {"model": "model", "copy_last": "copy-last", "historical_average": "historical avg",
           "plain_lgbm": "plain LightGBM"}  # fmt: skip


def format_table(table: list[dict[str, Any]]) -> str:
    """MAE / RMSE / MAPE of the model and each baseline by horizon, and the band's coverage."""
    lines = ["horizon | " + " | ".join(f"{name + ' MAE / RMSE / MAPE':<34}" for name in COLUMNS.values())
             + " | 10-90% band coverage"]  # fmt: skip
    for row in table:
        cells = [f"{row[k]['mae']:.2f} / {row[k]['rmse']:.2f} / {row[k]['mape']:.1f}%" for k in COLUMNS]
        lines.append(f"{row['minutes']:>4} min | " + " | ".join(f"{c:<34}" for c in cells)
                     + f" | {row['coverage']:.1%}")  # fmt: skip
    return "\n".join(lines)
