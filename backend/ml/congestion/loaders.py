"""Readers of the METR-LA layouts: the wide speed table (CSV, `.gz`, or `.h5` through pandas), the sensor table
(with or without a header) and the edge list; neighbours from the edges, else from coordinates.

A file that does not fit fails with one DataFileError saying what is wrong and where.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from backend.ml.errors import DataFileError

STEP = pd.Timedelta(minutes=5)
DEFAULT_NEIGHBOURS = 4


def read_speeds(path: str | Path) -> pd.DataFrame:
    """Rows: 5-minute timestamps (index); columns: sensor ids (text); values: mph, 0 = missing."""
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{path}: no such file")
    if path.suffix in (".h5", ".hdf5"):
        try:
            frame = pd.read_hdf(path, key="df")
        except ImportError as exc:
            raise DataFileError(f"{path}: reading HDF5 needs PyTables (pip install tables): {exc}") from exc
        frame.columns = [str(c) for c in frame.columns]
    else:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
        if raw.shape[1] < 2 or raw.empty:
            raise DataFileError(f"{path}: expected a timestamp column and one column per sensor, got {raw.shape[1]}")
        first = raw.columns[0]
        stamps = pd.to_datetime(raw[first], errors="coerce")
        if stamps.isna().any():
            row = int(np.flatnonzero(stamps.isna().to_numpy())[0])
            raise DataFileError(
                f"{path}: the first column must hold timestamps; line {row + 2} has {raw[first].iloc[row]!r}"
            )
        values = raw.drop(columns=[first]).apply(pd.to_numeric, errors="coerce")
        bad = values.isna() & (raw.drop(columns=[first]) != "")
        if bad.any().any():
            column = str(bad.columns[bad.any().to_numpy()][0])
            row = int(np.flatnonzero(bad[column].to_numpy())[0])
            value = raw[column].iloc[row]
            raise DataFileError(f"{path}: speeds must be numbers; column {column!r}, line {row + 2} has {value!r}")
        frame = values.fillna(0.0)
        frame.index = pd.DatetimeIndex(stamps, name="timestamp")
        frame.columns = [str(c).strip() for c in frame.columns]
    steps = frame.index.to_series().diff().iloc[1:]
    irregular = steps[steps != STEP]
    if not irregular.empty:
        at = irregular.index[0]
        raise DataFileError(
            f"{path}: readings must be every 5 minutes; {at} comes {irregular.iloc[0]} after the row before"
        )
    return frame.astype(np.float64)


def read_sensors(path: str | Path) -> pd.DataFrame:
    """`sensor_id, latitude, longitude` (header), or the header-less `index,sensor_id,latitude,longitude` of
    METR-LA's graph_sensor_locations.csv (or `sensor_id,latitude,longitude` without a header)."""
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{path}: no such file")
    raw = pd.read_csv(path, header=None, dtype=str, keep_default_na=False)
    if raw.empty:
        raise DataFileError(f"{path}: the sensor table is empty")
    header = [c.strip().lower() for c in raw.iloc[0]]
    if "sensor_id" in header:
        raw = raw.iloc[1:].set_axis(header, axis=1)
    elif raw.shape[1] == 4:
        raw = raw.set_axis(["index", "sensor_id", "latitude", "longitude"], axis=1)
    elif raw.shape[1] == 3:
        raw = raw.set_axis(["sensor_id", "latitude", "longitude"], axis=1)
    else:
        raise DataFileError(f"{path}: expected columns sensor_id, latitude, longitude; got {raw.shape[1]} columns")
    missing = {"latitude", "longitude"} - set(raw.columns)
    if missing:
        raise DataFileError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
    table = pd.DataFrame({"sensor_id": raw["sensor_id"].str.strip()})
    for column in ("latitude", "longitude"):
        table[column] = pd.to_numeric(raw[column], errors="coerce")
        if table[column].isna().any():
            line = int(np.flatnonzero(table[column].isna().to_numpy())[0]) + 1 + ("sensor_id" in header)
            raise DataFileError(f"{path}: {column} must be a number; line {line} has {raw[column].iloc[line - 1]!r}")
    return table.reset_index(drop=True)


def read_edges(path: str | Path) -> pd.DataFrame:
    """`from_sensor, to_sensor, weight`: a road graph (DCRNN's adjacency, or any weighted edge list)."""
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{path}: no such file")
    edges = pd.read_csv(path, dtype={"from_sensor": str, "to_sensor": str})
    missing = {"from_sensor", "to_sensor", "weight"} - set(edges.columns)
    if missing:
        raise DataFileError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
    edges["weight"] = pd.to_numeric(edges["weight"], errors="coerce")
    if edges["weight"].isna().any():
        raise DataFileError(f"{path}: weight must be a number; line {int(edges['weight'].isna().idxmax()) + 2}")
    return edges[["from_sensor", "to_sensor", "weight"]]


def check_sensors(speeds: pd.DataFrame, sensors: pd.DataFrame, where: str = "the speed table") -> None:
    known = set(sensors["sensor_id"])
    absent = [s for s in speeds.columns if s not in known]
    if absent:
        shown = ", ".join(absent[:10]) + (f", ... ({len(absent)} in all)" if len(absent) > 10 else "")
        raise DataFileError(f"{where} has sensors absent from the sensor table: {shown}")


def neighbours_from_edges(
    edges: pd.DataFrame, sensor_ids: list[str], k: int = DEFAULT_NEIGHBOURS
) -> dict[str, list[str]]:
    """Each sensor's k strongest links (either direction), excluding itself."""
    known = set(sensor_ids)
    both = pd.concat([edges, edges.rename(columns={"from_sensor": "to_sensor", "to_sensor": "from_sensor"})])
    both = both[(both.from_sensor != both.to_sensor) & both.from_sensor.isin(known) & both.to_sensor.isin(known)]
    both = both.sort_values("weight", ascending=False).drop_duplicates(["from_sensor", "to_sensor"])
    grouped = both.groupby("from_sensor")["to_sensor"].apply(lambda s: list(s[:k]))
    return {sensor: list(grouped.get(sensor, [])) for sensor in sensor_ids}


def neighbours_by_distance(sensors: pd.DataFrame, k: int = DEFAULT_NEIGHBOURS) -> dict[str, list[str]]:
    """Each sensor's k nearest sensors (equirectangular distance: accurate enough within a city)."""
    lat = np.radians(sensors["latitude"].to_numpy())
    lon = np.radians(sensors["longitude"].to_numpy())
    x = (lon[:, None] - lon[None, :]) * math.cos(float(np.mean(lat)))
    y = lat[:, None] - lat[None, :]
    distance = np.hypot(x, y)
    np.fill_diagonal(distance, np.inf)
    ids = list(sensors["sensor_id"])
    nearest = np.argsort(distance, axis=1)[:, :k]
    return {ids[i]: [ids[j] for j in nearest[i]] for i in range(len(ids))}
