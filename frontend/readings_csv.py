"""A readings CSV as the API's readings: long (one reading a row) or wide (a time column, then one column of
speeds per sensor id: the METR-LA table), each with its file line and what looks wrong with it."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd

OPTIONAL = ("volume", "occupancy")


def _value(cell: Any) -> Any:
    """A cell as JSON: numbers stay numbers, blanks become null, anything else is sent as written."""
    if cell is None or (isinstance(cell, float) and math.isnan(cell)):
        return None
    if isinstance(cell, str):
        text = cell.strip()
        try:
            return float(text)
        except ValueError:
            return text or None
    return float(cell)


def _timestamp(cell: Any, zone: ZoneInfo) -> tuple[str | None, str | None]:
    """(ISO time with a zone, problem): a time without a zone is read in `zone`."""
    text = str(cell).strip() if cell is not None else ""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return (text or None), f"timestamp {text!r} is not an ISO-8601 time"
    return (moment if moment.tzinfo else moment.replace(tzinfo=zone)).isoformat(), None


def readings_of(
    frame: pd.DataFrame, zone: ZoneInfo, known: set[str]
) -> tuple[list[dict[str, Any]], list[int], list[str | None]]:
    """The readings of a long or wide table, the file line of each, and what looks wrong with each (None: fine).
    In the wide layout an empty cell is no reading."""
    original = [str(c).strip() for c in frame.columns]
    columns = [c.lower() for c in original]
    readings: list[dict[str, Any]] = []
    lines: list[int] = []
    problems: list[str | None] = []
    if "sensor_id" in columns and "speed_mph" in columns:
        for number, values in enumerate(frame.itertuples(index=False, name=None), start=2):
            cells = dict(zip(columns, values, strict=True))
            stamp, problem = _timestamp(cells.get("timestamp"), zone)
            reading = {"sensor_id": str(cells["sensor_id"]).strip(), "timestamp": stamp,
                       "speed_mph": _value(cells["speed_mph"])}  # fmt: skip
            reading |= {k: _value(cells[k]) for k in OPTIONAL if k in cells and _value(cells[k]) is not None}
            speed = reading["speed_mph"]
            if problem is None and not (isinstance(speed, float) and 0 <= speed <= 120):
                problem = f"speed_mph {cells['speed_mph']!r} is not a number from 0 to 120"
            if problem is None and reading["sensor_id"] not in known:
                problem = f"sensor {reading['sensor_id']!r} is not registered"
            readings.append(reading)
            lines.append(number)
            problems.append(problem)
        return readings, lines, problems
    sensor_columns = original[1:]
    for number, row in enumerate(frame.itertuples(index=False, name=None), start=2):
        stamp, problem = _timestamp(row[0], zone)
        for sensor, cell in zip(sensor_columns, row[1:], strict=True):
            speed = _value(cell)
            if speed is None:
                continue
            readings.append({"sensor_id": str(sensor), "timestamp": stamp, "speed_mph": speed})
            lines.append(number)
            speed_problem = None if isinstance(speed, float) and 0 <= speed <= 120 else f"speed {cell!r} for {sensor}"
            unknown = None if str(sensor) in known else f"sensor {sensor!r} is not registered"
            problems.append(problem or speed_problem or unknown)
    return readings, lines, problems


def template_csv(sensor_ids: list[str]) -> bytes:
    """A long-layout template: three readings five minutes apart, of the first registered sensors."""
    ids = (sensor_ids or ["my-sensor-1"])[:3]
    lines = ["sensor_id,timestamp,speed_mph,volume,occupancy"]
    lines += [f"{sensor},2026-01-05T08:{5 * i:02d}:00-08:00,{58.5 - 3 * i:.1f},," for i, sensor in enumerate(ids)]
    return ("\n".join(lines) + "\n").encode()
