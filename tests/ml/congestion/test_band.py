"""The uncertainty band: calibrated residual percentiles by horizon and level now, served as p10 and p90."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from backend.ml.congestion.band import NO_READING, apply_band, band_bin, bin_of, coverage, fit_offsets
from backend.ml.congestion.model import CongestionModel
from tests.fixtures.traffic import LA


def test_bins_follow_the_level_bounds_and_a_missing_reading_has_its_own() -> None:
    last = np.array([10.0, 30.0, 45.0, 60.0, np.nan])
    free_flow = np.full(5, 65.0)
    assert band_bin(last, free_flow).tolist() == [0, 1, 2, 3, NO_READING]
    assert [bin_of(v, 65.0) for v in last] == [0, 1, 2, 3, NO_READING]


def test_offsets_are_the_residual_percentiles_and_bracket_the_forecast() -> None:
    rng = np.random.default_rng(7)
    residuals = np.concatenate([rng.normal(0, 1, 5000), rng.normal(0, 8, 5000), rng.normal(5, 1, 50)])
    bins = np.concatenate([np.full(5000, 3), np.full(5000, 0), np.full(50, 1)])
    offsets = fit_offsets(residuals, bins)
    assert offsets[3] == pytest.approx([-1.28, 1.28], abs=0.08)  # a free road: a narrow band
    assert offsets[0] == pytest.approx([-10.25, 10.25], abs=0.6)  # a jammed one: a wide band
    assert offsets[1][0] <= 0 <= offsets[1][1]  # too few errors: the horizon's overall band, around the forecast
    low, high = apply_band(np.array([60.0, 20.0]), offsets, np.array([3, 0]))
    assert (low <= [60.0, 20.0]).all() and ([60.0, 20.0] <= high).all() and high[0] - low[0] < high[1] - low[1]


def test_coverage_counts_real_speeds_inside_and_skips_missing_ones() -> None:
    low, high = np.array([10.0, 10.0, 10.0, 10.0]), np.array([20.0, 20.0, 20.0, 20.0])
    assert coverage(low, high, np.array([15.0, 25.0, 0.0, np.nan])) == 0.5


@pytest.fixture(scope="module")
def model(congestion_model_dir: Path) -> CongestionModel:
    return CongestionModel.load(congestion_model_dir)


def test_the_trained_model_reports_its_coverage_and_serves_p10_below_the_speed_below_p90(
    model: CongestionModel,
) -> None:
    metrics = model.info()["metrics"]
    for minutes in (15, 30, 60):
        assert 0.6 < metrics[f"coverage_{minutes}"] < 0.95
        assert metrics[f"baseline_lgbm_mae_{minutes}"] > 0
    end = datetime(2024, 3, 4, 8, 0, tzinfo=LA)
    for sensor, start in ((model.sensor_ids[0], 62.0), (model.sensor_ids[1], 18.0)):
        readings = [{"timestamp": (end - timedelta(minutes=5 * i)).isoformat(), "speed_mph": start - i * 0.5}
                    for i in range(12)]  # fmt: skip
        answer = model.predict_one({"sensor_id": sensor, "readings": readings}).to_dict()
        for forecast in answer["forecasts"]:
            assert forecast["speed_mph_p10"] <= forecast["speed_mph"] <= forecast["speed_mph_p90"]
            assert forecast["speed_mph_p90"] - forecast["speed_mph_p10"] > 0
