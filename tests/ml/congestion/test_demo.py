"""The demo network's speeds: a pure function of sensor and moment that follows the model's learned profile."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from backend.ml.congestion.demo import ZONE, demo_readings, demo_speeds, is_demo_speed, moment_of, step_of
from backend.ml.congestion.model import CongestionModel


@pytest.fixture(scope="module")
def model(congestion_model_dir: Path) -> CongestionModel:
    return CongestionModel.load(congestion_model_dir)


def test_a_step_is_the_same_speeds_every_time_and_differs_from_the_next(model: CongestionModel) -> None:
    step = step_of(datetime(2026, 12, 7, 17, 0, tzinfo=ZONE))
    first = demo_speeds(model.profiles, model.free_flow, step)
    assert np.array_equal(first, demo_speeds(model.profiles, model.free_flow, step))
    following = demo_speeds(model.profiles, model.free_flow, step + 1)
    assert not np.array_equal(first, following)
    assert np.abs(first - following).mean() < 5  # a slow wobble, not a new draw each step
    assert first.shape == (len(model.sensor_ids),)
    assert (first >= 3).all() and (first <= model.free_flow * 1.05 + 1e-9).all()


def test_the_speeds_follow_the_profile_of_the_local_weekday_and_slot(model: CongestionModel) -> None:
    ratios = []
    for day in range(7):
        for hour in (3, 8, 17):
            local = datetime(2026, 12, 7, hour, 0, tzinfo=ZONE) + timedelta(days=day)
            speeds = demo_speeds(model.profiles, model.free_flow, step_of(local))
            sensors = np.arange(len(speeds))
            profile = model.profiles.at(sensors, np.full(len(speeds), local.weekday()), np.full(len(speeds), hour * 12))
            ratios.append(speeds / profile)
    assert 0.95 < float(np.median(np.concatenate(ratios))) < 1.05


def test_steps_and_moments_meet_on_five_minute_marks_in_local_time() -> None:
    moment = datetime(2026, 12, 7, 9, 7, 31, tzinfo=UTC)
    assert moment_of(step_of(moment)) == datetime(2026, 12, 7, 9, 5, tzinfo=UTC)
    assert moment_of(step_of(moment)).utcoffset() == timedelta(hours=-8)  # Los Angeles in December


def test_a_stored_demo_reading_is_recognised_and_another_is_not(model: CongestionModel) -> None:
    step = step_of(datetime(2026, 12, 7, 10, 0, tzinfo=UTC))
    speeds = demo_speeds(model.profiles, model.free_flow, step)
    (reading, *_) = demo_readings(model.sensor_ids, speeds, step)
    stored_naive = datetime.fromisoformat(reading["timestamp"]).astimezone(UTC).replace(tzinfo=None)  # as SQLite
    assert is_demo_speed(model.profiles, model.free_flow, 0, stored_naive, reading["speed_mph"])
    assert not is_demo_speed(model.profiles, model.free_flow, 0, stored_naive, reading["speed_mph"] + 0.1)
    off_mark = stored_naive + timedelta(minutes=1)
    assert not is_demo_speed(model.profiles, model.free_flow, 0, off_mark, reading["speed_mph"])
