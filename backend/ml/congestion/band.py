"""The forecast's uncertainty band: calibrated residuals.

The 10th and 90th percentiles of the model's errors on the validation windows (never seen in fitting), by horizon
and by how congested the sensor is now (its last speed over its free-flow speed, in the levels' bounds; no reading
in the window is a bin of its own): a jammed road's next hour is less certain than a free-flowing one's. A bin with
too few errors takes the horizon's overall percentiles. Serving adds the two offsets to the forecast: no extra model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

QUANTILES = (0.1, 0.9)
RATIO_EDGES = (0.4, 0.6, 0.85)  # severe | heavy | moderate | free, as the congestion levels
NO_READING = len(RATIO_EDGES) + 1
BINS = NO_READING + 1
MIN_PER_BIN = 200


def band_bin(last: np.ndarray, free_flow: np.ndarray) -> np.ndarray:
    """Each row's bin: 0 (severe) to 3 (free) by last / free-flow speed, NO_READING without a last speed."""
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = last / free_flow
    return np.where(np.isnan(ratio), NO_READING, np.searchsorted(RATIO_EDGES, np.nan_to_num(ratio), side="right"))


def bin_of(last: float, free_flow: float) -> int:
    """`band_bin` of one row, in plain Python (the single-prediction path)."""
    if last != last or free_flow <= 0:
        return NO_READING
    ratio = last / free_flow
    return sum(ratio >= edge for edge in RATIO_EDGES)


def fit_offsets(residuals: np.ndarray, bins: np.ndarray) -> list[list[float]]:
    """[low, high] per bin from one horizon's residuals (real - predicted, NaN = not scored); low <= 0 <= high so
    that the forecast always lies inside its band."""
    keep = ~np.isnan(residuals)
    residuals, bins = residuals[keep], bins[keep]
    overall = np.quantile(residuals, QUANTILES) if len(residuals) else np.zeros(2)
    offsets = []
    for b in range(BINS):
        mine = residuals[bins == b]
        low, high = np.quantile(mine, QUANTILES) if len(mine) >= MIN_PER_BIN else overall
        offsets.append([round(min(float(low), 0.0), 3), round(max(float(high), 0.0), 3)])
    return offsets


def band_metadata(offsets_by_minutes: Mapping[int, list[list[float]]]) -> dict[str, Any]:
    return {
        "method": "calibrated residuals: percentiles of the validation windows' errors by horizon and level now",
        "quantiles": list(QUANTILES),
        "ratio_edges": list(RATIO_EDGES),
        "offsets": {str(minutes): offsets for minutes, offsets in offsets_by_minutes.items()},
    }


def apply_band(
    speeds: np.ndarray, offsets: Sequence[Sequence[float]], bins: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(p10, p90) of forecasts `speeds` in their `bins`, within 0..120 mph."""
    table = np.asarray(offsets, dtype=np.float64)
    return np.clip(speeds + table[bins, 0], 0.0, 120.0), np.clip(speeds + table[bins, 1], 0.0, 120.0)


def coverage(low: np.ndarray, high: np.ndarray, actual: np.ndarray) -> float:
    """The share of real speeds (0 / NaN = missing, not scored) inside [low, high]."""
    mask = ~np.isnan(actual) & (actual > 0)
    return float(np.mean((actual[mask] >= low[mask]) & (actual[mask] <= high[mask])))
