"""Demo speeds: the congestion model's own network at any moment, so a first run shows a live map.

Each sensor runs at the profile the model learned for the local weekday and 5-minute slot (the default model's,
from the real METR-LA week: every day's profile, with its rush hours and its slow sensors), with a slow wobble and a
little noise. Every value is a pure
function of the sensor and the moment, so a replay, a sample day and a restarted feed agree on every reading, and a
stored reading can be recognised as the demo's (`is_demo_speed`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from backend.ml.congestion.features import STEPS_PER_DAY, Profiles

# The METR-LA sensors are on Los Angeles roads: the profile's slots are Los Angeles wall-clock time.
ZONE = ZoneInfo("America/Los_Angeles")
STEP = timedelta(minutes=5)
SEED = 20120301
KNOT_STEPS = 6  # the wobble changes course every 30 minutes
WOBBLE = 0.06  # its size, as a share of the profile speed
NOISE_MPH = 0.6
MIN_MPH = 3.0


def step_of(moment: datetime) -> int:
    """The 5-minute step since the epoch a moment falls in (a moment needs a zone)."""
    return int(moment.astimezone(UTC).timestamp() // STEP.total_seconds())


def moment_of(step: int) -> datetime:
    """The start of a step, in the sensors' local time."""
    return datetime.fromtimestamp(step * STEP.total_seconds(), UTC).astimezone(ZONE)


def _wobble(step: int, sensors: int) -> np.ndarray:
    knot, into = divmod(step, KNOT_STEPS)
    before = np.random.default_rng([SEED, knot]).standard_normal(sensors)
    after = np.random.default_rng([SEED, knot + 1]).standard_normal(sensors)
    share = into / KNOT_STEPS
    return (1 - share) * before + share * after


def demo_speeds(profiles: Profiles, free_flow: np.ndarray, step: int) -> np.ndarray:
    """Every sensor's speed (mph, 2 decimals) at a step, in the model's sensor order."""
    local = moment_of(step)
    slot = local.hour * (STEPS_PER_DAY // 24) + local.minute // 5
    sensors = len(free_flow)
    profile = profiles.at(np.arange(sensors), np.full(sensors, local.weekday()), np.full(sensors, slot))
    noise = np.random.default_rng([SEED, step, 1]).standard_normal(sensors) * NOISE_MPH
    speeds = profile * (1 + WOBBLE * _wobble(step, sensors)) + noise
    return np.round(np.clip(speeds, MIN_MPH, np.maximum(free_flow * 1.05, MIN_MPH + 1)), 2)


def demo_readings(sensor_ids: Sequence[str], speeds: np.ndarray, step: int) -> list[dict]:
    """The readings of one step, as the readings API and the live feed take them (local time with its offset)."""
    stamp = moment_of(step).isoformat()
    return [{"sensor_id": sensor, "timestamp": stamp, "speed_mph": float(speed)}
            for sensor, speed in zip(sensor_ids, speeds, strict=True)]  # fmt: skip


def is_demo_speed(profiles: Profiles, free_flow: np.ndarray, sensor: int, moment: datetime, speed: float) -> bool:
    """Whether a stored reading is the one the demo publishes for that sensor and moment."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    step = step_of(moment)
    if moment_of(step) != moment:
        return False
    return abs(float(demo_speeds(profiles, free_flow, step)[sensor]) - speed) < 0.006
