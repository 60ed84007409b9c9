"""Generator, chronological split, masked metrics, and the trained model against its baselines."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from backend.ml.congestion.features import HORIZONS, WINDOW, summarise, window_stats
from backend.ml.congestion.network import generate_network
from backend.ml.congestion.training import chronological_split, masked_metrics


def test_the_generator_is_deterministic_for_a_seed() -> None:
    a, b = generate_network(weeks=1, seed=3, sensors=10), generate_network(weeks=1, seed=3, sensors=10)
    assert a.speeds.equals(b.speeds) and a.edges.equals(b.edges)
    assert not generate_network(weeks=1, seed=4, sensors=10).speeds.equals(a.speeds)


def test_the_generator_has_rush_hours_by_direction_quiet_weekends_and_outages() -> None:
    speeds = generate_network(weeks=2, seed=1).speeds
    real = speeds.where(speeds > 0)
    hour, weekend = real.index.hour, real.index.day_of_week >= 5
    morning = real[(hour == 8) & ~weekend].mean()
    evening = real[(hour == 17) & ~weekend].mean()
    night = real[(hour == 3) & ~weekend].mean()
    assert (morning < night - 5).sum() > 40 and (evening < night - 5).sum() > 40
    assert ((morning - evening).abs() > 5).sum() > 50  # directions jam at different times
    assert real[(hour == 8) & weekend].mean().mean() > morning.mean() + 5
    assert 0.005 < (speeds == 0).to_numpy().mean() < 0.1


def test_the_split_is_chronological_with_no_overlap() -> None:
    split = chronological_split(4000)
    last = max(HORIZONS)
    assert split.valid[0] - (WINDOW - 1) > split.train[-1] + last  # no window starts before the last one ends
    assert split.test[0] - (WINDOW - 1) > split.valid[-1] + last
    total = len(split.train) + len(split.valid) + len(split.test)
    assert abs(len(split.train) / total - 0.7) < 0.02 and abs(len(split.test) / total - 0.2) < 0.02


def test_missing_targets_are_never_scored() -> None:
    actual = np.array([50.0, 0.0, np.nan, 40.0])
    predicted = np.array([52.0, 999.0, 999.0, 40.0])
    assert masked_metrics(predicted, actual) == {"mae": 1.0, "rmse": np.sqrt(2.0), "mape": 2.0, "scored": 2}


def test_the_single_row_summary_equals_the_vectorised_one() -> None:
    rng = np.random.default_rng(0)
    windows = np.where(rng.random((500, WINDOW)) < 0.3, np.nan, rng.uniform(5, 70, (500, WINDOW)))
    windows[:20] = np.nan
    vectorised = window_stats(windows)
    for i, window in enumerate(windows):
        expected = [getattr(vectorised, f)[i] for f in ("last", "staleness", "lag3", "first", "mean", "minimum")]
        expected.append(vectorised.missing[i])
        np.testing.assert_allclose(summarise(list(window)), expected, equal_nan=True)


def test_the_model_beats_both_baselines_and_says_so(congestion_model_dir: Path) -> None:
    metadata = json.loads((congestion_model_dir / "metadata.json").read_text())
    for minutes in (15, 30, 60):
        assert metadata[f"mae_{minutes}"] < metadata[f"baseline_last_mae_{minutes}"]
        assert metadata[f"mae_{minutes}"] < metadata[f"baseline_ha_mae_{minutes}"]
    assert len(metadata["sensors"]) == 24 and metadata["kind"] == "congestion"
    assert set(metadata["neighbours"]) == {s["sensor_id"] for s in metadata["sensors"]}
    files = sorted(p.name for p in congestion_model_dir.iterdir())
    assert files == ["metadata.json", "model.txt", "profiles.npy"]
    assert (congestion_model_dir / "profiles.npy").read_bytes()[:6] == b"\x93NUMPY"  # numpy's format, no pickle
