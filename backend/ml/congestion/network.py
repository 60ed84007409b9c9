"""A seeded generator of a road-sensor network in the METR-LA layout, for the default model and the tests.

By default the 207 real METR-LA sensor positions (reference data); the readings are generated: per-sensor free-flow
speeds, morning and evening rush hours that differ by direction, quieter weekends, incidents, jams that spread to
neighbouring sensors with a lag, noise, and sensor outages (runs of 0 = missing).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from backend.ml.congestion.loaders import neighbours_by_distance

REFERENCE_SENSORS = Path(__file__).with_name("metr_la_sensors.csv")
STEPS_PER_DAY = 288
START = pd.Timestamp("2012-03-05 00:00")  # a Monday
SPREAD_LAG_STEPS = 2  # a jam reaches the next sensor 10 minutes later
SPREAD_SHARE = 0.45


@dataclass
class Network:
    speeds: pd.DataFrame  # wide: timestamp index, one column per sensor id, mph, 0 = missing
    sensors: pd.DataFrame  # sensor_id, latitude, longitude
    edges: pd.DataFrame  # from_sensor, to_sensor, weight

    def write(self, folder: Path) -> dict[str, Path]:
        folder.mkdir(parents=True, exist_ok=True)
        paths = {"speeds": folder / "speeds.csv", "sensors": folder / "sensors.csv", "edges": folder / "edges.csv"}
        self.speeds.round(2).to_csv(paths["speeds"], index_label="timestamp")
        self.sensors.to_csv(paths["sensors"], index=False)
        self.edges.to_csv(paths["edges"], index=False)
        return paths


def reference_sensors() -> pd.DataFrame:
    raw = pd.read_csv(REFERENCE_SENSORS, header=None, names=["index", "sensor_id", "latitude", "longitude"], dtype=str)
    return pd.DataFrame({
        "sensor_id": raw["sensor_id"],
        "latitude": raw["latitude"].astype(float),
        "longitude": raw["longitude"].astype(float),
    })  # fmt: skip


def _bump(hours: np.ndarray, centre: float, width: float) -> np.ndarray:
    return np.exp(-0.5 * ((hours - centre) / width) ** 2)


def generate_network(weeks: int = 8, seed: int = 42, sensors: int | None = None) -> Network:
    rng = np.random.default_rng(seed)
    table = reference_sensors()
    if sensors is not None:
        table = table.iloc[:sensors].reset_index(drop=True)
    n = len(table)
    ids = list(table["sensor_id"])
    neighbours = neighbours_by_distance(table, k=3)
    index = {s: i for i, s in enumerate(ids)}
    nbr = np.array([[index[m] for m in neighbours[s]] for s in ids])

    steps = weeks * 7 * STEPS_PER_DAY
    stamps = START + pd.to_timedelta(np.arange(steps) * 5, unit="min")
    hours = (np.arange(steps) % STEPS_PER_DAY) / 12.0
    weekday = (np.arange(steps) // STEPS_PER_DAY) % 7
    weekend = weekday >= 5

    free_flow = rng.uniform(55, 70, n)
    sensitivity = rng.uniform(0.25, 0.65, n)
    inbound = rng.random(n) < 0.5  # inbound roads jam in the morning, outbound ones in the evening
    morning = _bump(hours, 8.0, 1.0)[:, None] * np.where(inbound, 1.0, 0.35)[None, :]
    evening = _bump(hours, 17.5, 1.3)[:, None] * np.where(inbound, 0.35, 1.0)[None, :]
    weekday_load = morning + evening
    weekend_load = 0.3 * _bump(hours, 14.0, 2.5)[:, None] * np.ones(n)[None, :]
    base = np.where(weekend[:, None], weekend_load, weekday_load) * sensitivity[None, :]
    base *= rng.uniform(0.85, 1.15, (steps // STEPS_PER_DAY, 1)).repeat(STEPS_PER_DAY, axis=0)  # busier days

    incidents = np.zeros((steps, n))
    for _ in range(rng.poisson(3 * weeks * 7)):
        at, sensor = int(rng.integers(steps)), int(rng.integers(n))
        length = int(rng.integers(6, 24))
        incidents[at : at + length, sensor] += rng.uniform(0.3, 0.6)

    congestion = np.zeros((steps, n))
    for t in range(steps):
        upstream = congestion[t - SPREAD_LAG_STEPS][nbr].mean(axis=1) if t >= SPREAD_LAG_STEPS else 0.0
        congestion[t] = np.minimum(0.92, base[t] + incidents[t] + SPREAD_SHARE * upstream)

    noise = np.zeros((steps, n))
    shocks = rng.normal(0, 1.6, (steps, n))
    for t in range(1, steps):
        noise[t] = 0.7 * noise[t - 1] + shocks[t]
    speeds = np.clip(free_flow[None, :] * (1 - congestion) + noise, 3.0, 85.0)

    for sensor in range(n):  # outages: runs of zeros, about one per sensor per two weeks
        for _ in range(rng.poisson(weeks / 2)):
            at = int(rng.integers(steps))
            speeds[at : at + int(rng.integers(6, 72)), sensor] = 0.0
    speeds[rng.random((steps, n)) < 0.003] = 0.0

    edges = pd.DataFrame(
        [(s, m, 1.0) for s in ids for m in neighbours[s]], columns=["from_sensor", "to_sensor", "weight"]
    )
    frame = pd.DataFrame(speeds, index=pd.DatetimeIndex(stamps, name="timestamp"), columns=ids)
    return Network(frame, table, edges)
