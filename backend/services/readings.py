"""Sensor readings in: each reading validated on its own (a bad one is refused with its index, the rest are
stored), then stored once per (sensor, timestamp) in one bulk statement. Used by the REST route and the live feed.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from backend.core.errors import DependencyUnavailable
from backend.core.metrics import READINGS
from backend.db import readings as stored_readings
from backend.db.models import Sensor

MAX_FUTURE = timedelta(minutes=5)
EARLIEST = datetime(1990, 1, 1, tzinfo=UTC)
MAX_VOLUME = 100_000.0
SENSOR_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


@dataclass(slots=True)
class IngestOutcome:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)


def _number(value: Any) -> float | None:
    if type(value) in (float, int) and math.isfinite(value):
        return float(value)
    return None


def _timestamp(value: Any) -> tuple[datetime, int] | str:
    """(UTC time, offset in minutes) or what is wrong."""
    if type(value) is not str or len(value) > 40:
        return "must be an ISO-8601 time string with a zone, e.g. 2012-03-01T08:00:00-08:00 or ...Z"
    return _parse_time(value)


@lru_cache(maxsize=4096)
def _parse_time(value: str) -> tuple[datetime, int] | str:
    """Memoised: the readings of one call (and of consecutive calls) share a handful of timestamps."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return f"is not an ISO-8601 time: {value[:40]!r}"
    offset = moment.utcoffset()
    if offset is None:
        return f"has no time zone: {value!r}; add Z (UTC) or an offset such as +09:00"
    return moment.astimezone(UTC), int(offset.total_seconds() // 60)


def parse_reading(item: Any, known: Callable[[str], bool], now: datetime) -> tuple[tuple, None] | tuple[None, str]:
    """One reading (flat or nested) -> the row to store, or the message refusing it (every wrong field named).

    A flat reading of a registered sensor with valid values takes the quick path (registered ids already match
    SENSOR_ID_PATTERN); anything else is checked field by field, which names every problem."""
    if type(item) is dict and "traffic_data" not in item:
        sensor, speed = item.get("sensor_id"), item.get("speed_mph")
        volume, occupancy = item.get("volume"), item.get("occupancy")
        stamp = _timestamp(item.get("timestamp"))
        if (
            type(sensor) is str
            and type(speed) in _NUMBERS
            and 0 <= speed <= 120
            and (volume is None or (type(volume) in _NUMBERS and 0 <= volume <= MAX_VOLUME))
            and (occupancy is None or (type(occupancy) in _NUMBERS and 0 <= occupancy <= 100))
            and type(stamp) is tuple
            and EARLIEST <= stamp[0] <= now + MAX_FUTURE
            and known(sensor)
        ):
            return (sensor, stamp[0], float(speed), _float_or_none(volume), _float_or_none(occupancy), stamp[1]), None
    return _parse_checked(item, known, now)


_NUMBERS = (float, int)


def _float_or_none(value: float | int | None) -> float | None:
    return None if value is None else float(value)


def _parse_checked(item: Any, known: Callable[[str], bool], now: datetime) -> tuple[tuple, None] | tuple[None, str]:
    if not isinstance(item, Mapping):
        return None, "must be an object with sensor_id, timestamp and speed_mph"
    problems: list[str] = []
    sensor = item.get("sensor_id")
    if isinstance(sensor, int) and not isinstance(sensor, bool):
        sensor = str(sensor)
    if type(sensor) is not str or not SENSOR_ID_PATTERN.match(sensor):
        problems.append("sensor_id must be a string of 1 to 64 letters, digits or _.:-")
    elif not known(sensor):
        problems.append(f"sensor_id {sensor!r} is not a registered sensor (PUT /api/traffic/sensors)")
    stamp = _timestamp(item.get("timestamp"))
    if isinstance(stamp, str):
        problems.append(f"timestamp {stamp}")
    elif stamp[0] > now + MAX_FUTURE:
        problems.append(f"timestamp is more than 5 minutes in the future: {item['timestamp']}")
    elif stamp[0] < EARLIEST:
        problems.append(f"timestamp is before {EARLIEST.year}: {item['timestamp']}")
    nested = item.get("traffic_data")
    if nested is not None and not isinstance(nested, Mapping):
        return None, "traffic_data must be an object with speed_mph, volume_vehicles_per_hour, occupancy_percent"
    if nested is not None:
        fields = (("traffic_data.speed_mph", nested.get("speed_mph")),
                  ("traffic_data.volume_vehicles_per_hour", nested.get("volume_vehicles_per_hour")),
                  ("traffic_data.occupancy_percent", nested.get("occupancy_percent")))  # fmt: skip
    else:
        fields = (("speed_mph", item.get("speed_mph")), ("volume", item.get("volume")),
                  ("occupancy", item.get("occupancy")))  # fmt: skip
    (speed_name, speed_raw), (volume_name, volume_raw), (occupancy_name, occupancy_raw) = fields
    speed = _number(speed_raw)
    if speed is None or not 0 <= speed <= 120:
        problems.append(f"{speed_name} must be a number from 0 to 120 mph; got {speed_raw!r:.40}")
    volume = None if volume_raw is None else _number(volume_raw)
    if volume_raw is not None and (volume is None or not 0 <= volume <= MAX_VOLUME):
        problems.append(f"{volume_name} must be a number from 0 to {MAX_VOLUME:,.0f}; got {volume_raw!r:.40}")
    occupancy = None if occupancy_raw is None else _number(occupancy_raw)
    if occupancy_raw is not None and (occupancy is None or not 0 <= occupancy <= 100):
        problems.append(f"{occupancy_name} must be a number from 0 to 100; got {occupancy_raw!r:.40}")
    if problems:
        return None, "; ".join(problems)
    moment, offset = stamp  # type: ignore[misc]
    return (sensor, moment, speed, volume, occupancy, offset), None


class SensorDirectory:
    """The registered sensor ids, read from the database and read again (at most once a second) when a reading
    names one it does not know: a sensor registered through another process is found without a restart."""

    def __init__(self, sessions: sessionmaker[Session], refresh_seconds: float = 1.0) -> None:
        self.sessions = sessions
        self.refresh_seconds = refresh_seconds
        self._ids: frozenset[str] = frozenset()
        self._loaded_at = -math.inf

    def reload(self) -> None:
        with self.sessions() as session:
            self._ids = frozenset(session.scalars(select(Sensor.sensor_id)))
        self._loaded_at = time.monotonic()

    def reload_soon(self) -> None:
        """The table changed: the next unknown id reads it again without waiting."""
        self._loaded_at = -math.inf

    def __contains__(self, sensor_id: str) -> bool:
        if sensor_id in self._ids:
            return True
        if time.monotonic() - self._loaded_at >= self.refresh_seconds:
            self.reload()
            return sensor_id in self._ids
        return False


def ingest(
    sessions: sessionmaker[Session], sensors: SensorDirectory, items: Sequence[Any], source: str
) -> IngestOutcome:
    """Validate and store; the rows are committed before this returns (nothing accepted is lost)."""
    outcome = IngestOutcome()
    now = datetime.now(UTC)
    rows = []
    try:
        for index, item in enumerate(items):
            row, problem = parse_reading(item, sensors.__contains__, now)
            if row is None:
                outcome.rejected.append({"index": index, "message": problem})
            else:
                rows.append(row)
        if rows:
            with sessions() as session:
                outcome.accepted = stored_readings.insert_new(session, rows)
                session.commit()
    except SQLAlchemyError as exc:
        raise DependencyUnavailable("database", "cannot store the readings") from exc
    outcome.duplicates = len(rows) - outcome.accepted
    READINGS.labels("accepted", source).inc(outcome.accepted)
    READINGS.labels("duplicate", source).inc(outcome.duplicates)
    READINGS.labels("rejected", source).inc(len(outcome.rejected))
    return outcome
