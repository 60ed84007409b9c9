"""Sensors and stored readings: registration (JSON or the loaders' CSV layout), the current state, history pages.
Times leave in the zone each reading came in (stored in UTC with its offset)."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Sequence
from datetime import date, datetime, timedelta, timezone
from functools import cache
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from backend.core.errors import DependencyUnavailable, InvalidRequest, NotFound, TooLarge
from backend.db import readings as stored
from backend.db import rollups
from backend.db.models import Sensor
from backend.db.readings import local_time
from backend.ml.congestion.model import CongestionModel, congestion_level
from backend.schemas.pages import Page, Position
from backend.schemas.traffic import (
    MAX_SENSORS_PER_CALL,
    ProfileBin,
    ReadingOut,
    SensorDetail,
    SensorIn,
    SensorsUpsertResult,
    SpeedProfile,
)

PROFILE_MINUTES = 15


def _latest(reading: stored.NewestRow | None, free_flow: float | None, now: float) -> dict[str, Any] | None:
    """A newest reading as LatestReading gives it (`now` in POSIX seconds)."""
    if reading is None:
        return None
    at, speed, offset = reading
    return {
        "timestamp": datetime.fromtimestamp(at, _zone(offset)),
        "speed_mph": speed,
        "level": congestion_level(speed, free_flow) if free_flow and speed > 0 else None,
        "age_seconds": round(now - at, 1),
    }


@cache
def _zone(offset_minutes: int) -> timezone:
    return timezone(timedelta(minutes=offset_minutes))


def sensors_from_csv(text: str) -> list[dict[str, Any]]:
    """The loaders' sensor table: `sensor_id,latitude,longitude` with a header, or the METR-LA header-less
    `index,sensor_id,latitude,longitude`."""
    try:
        rows = [row for row in csv.reader(io.StringIO(text)) if row and any(cell.strip() for cell in row)]
    except csv.Error as exc:
        raise InvalidRequest(f"the sensor table is not a readable CSV: {exc}", details=[{"field": "body"}]) from exc
    if not rows:
        raise InvalidRequest("the sensor table is empty", details=[{"field": "body"}])
    header = [cell.strip().lower() for cell in rows[0]]
    if "sensor_id" in header:
        names = header
        rows = rows[1:]
    elif len(rows[0]) == 4:
        names = ["index", "sensor_id", "latitude", "longitude"]
    else:
        raise InvalidRequest(
            "a sensor table has a header naming sensor_id, latitude, longitude (and optionally name, "
            "free_flow_mph), or four columns index,sensor_id,latitude,longitude without a header",
            details=[{"field": "body"}],
        )
    return [{k: v.strip() for k, v in zip(names, row, strict=False) if k != "index" and v.strip() != ""}
            for row in rows]  # fmt: skip


def upsert_sensors(sessions: sessionmaker[Session], items: Sequence[Any]) -> SensorsUpsertResult:
    if not items:
        raise InvalidRequest("send at least one sensor", details=[{"field": "sensors"}])
    if len(items) > MAX_SENSORS_PER_CALL:
        raise TooLarge(f"at most {MAX_SENSORS_PER_CALL:,} sensors per call; got {len(items):,}",
                       details=[{"field": "sensors", "max": MAX_SENSORS_PER_CALL}])  # fmt: skip
    valid: dict[str, dict[str, Any]] = {}
    problems = []
    for index, item in enumerate(items):
        try:
            sensor = SensorIn.model_validate(item)
        except ValidationError as exc:
            for error in exc.errors():
                where = ".".join(str(p) for p in error["loc"]) or "sensor"
                problems.append({"field": f"sensors[{index}].{where}", "message": error["msg"]})
            continue
        valid[sensor.sensor_id] = sensor.model_dump(exclude_unset=True)
    if problems:
        wrong = "1 sensor field is" if len(problems) == 1 else f"{len(problems)} sensor fields are"
        raise InvalidRequest(f"{wrong} invalid; nothing was stored", details=problems)
    try:
        with sessions() as session:
            created, updated = stored.upsert_sensors(session, list(valid.values()))
            session.commit()
    except SQLAlchemyError as exc:
        raise DependencyUnavailable("database", "cannot store the sensors") from exc
    return SensorsUpsertResult(created=created, updated=updated)


def register_model_sensors(sessions: sessionmaker[Session], model: CongestionModel) -> SensorsUpsertResult:
    """The congestion model's sensor table (coordinates and free-flow speeds) as registered sensors."""
    sensors = [
        {"sensor_id": s["sensor_id"], "latitude": s["latitude"], "longitude": s["longitude"],
         "free_flow_mph": s["free_flow_mph"]}
        for s in model.metadata["sensors"]
    ]  # fmt: skip
    return upsert_sensors(sessions, sensors)


def _described(sensor: stored.SensorRow, newest: stored.NewestRow | None, now: float) -> dict[str, Any]:
    """A sensor's fields as SensorOut (and SensorDetail) give them, with its newest reading."""
    sensor_id, latitude, longitude, name, free_flow = sensor
    return {"sensor_id": sensor_id, "latitude": latitude, "longitude": longitude, "name": name,
            "free_flow_mph": free_flow, "latest": _latest(newest, free_flow, now)}  # fmt: skip


def list_sensors(session: Session, with_readings_only: bool = False) -> list[dict[str, Any]]:
    """Every registered sensor (SensorOut's fields) with its newest reading: one query of plain rows, since the
    network's thousands of sensors are answered whole."""
    now = time.time()
    return [
        _described(sensor, newest, now) for sensor, newest in stored.sensors_with_newest(session, with_readings_only)
    ]


def current(session: Session) -> list[dict[str, Any]]:
    """Sensors that have readings, each with its newest (SensorOut's fields)."""
    return list_sensors(session, with_readings_only=True)


def _page(
    session: Session, start: datetime | None, end: datetime | None, sensor_id: str | None, at: Position[str], size: int
) -> Page[ReadingOut]:
    found = stored.page_of_readings(session, start=start, end=end, sensor_id=sensor_id, size=size, offset=at.offset,
                                    after=at.after, count_limit=at.count_limit)  # fmt: skip
    out = [
        ReadingOut(sensor_id=r.sensor_id, timestamp=local_time(r), speed_mph=r.speed_mph, volume=r.volume,
                   occupancy=r.occupancy)
        for r in found.items
    ]  # fmt: skip
    last = found.items[-1] if found.more else None
    after = None if last is None else at.cursor_after((last.timestamp, last.sensor_id))
    return Page[ReadingOut].build(items=out, total=found.total, total_exact=found.total_exact, page=at.page,
                                  size=size, next=after)  # fmt: skip


def readings_of_day(
    session: Session,
    day: date,
    sensor_id: str | None,
    page: int,
    size: int,
    utc_offset_minutes: int = 0,
    cursor: str | None = None,
) -> Page[ReadingOut]:
    """Readings of one calendar day (in UTC unless an offset is given), optionally of one sensor."""
    at = Position.of("readings", page=page, size=size, cursor=cursor, tie=str)
    start = datetime(day.year, day.month, day.day, tzinfo=timezone(timedelta(minutes=utc_offset_minutes)))
    return _page(session, start, start + timedelta(days=1), sensor_id, at, size)


def readings_of_sensor(
    session: Session,
    sensor_id: str,
    since: datetime | None,
    until: datetime | None,
    page: int,
    size: int,
    cursor: str | None = None,
) -> Page[ReadingOut]:
    at = Position.of("readings", page=page, size=size, cursor=cursor, tie=str)
    _sensor_or_404(session, sensor_id)
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise InvalidRequest(f"{name} needs a time zone (Z or +hh:mm)", details=[{"field": name}])
    return _page(session, since, until, sensor_id, at, size)


def _sensor_or_404(session: Session, sensor_id: str) -> Sensor:
    sensor = session.get(Sensor, sensor_id)
    if sensor is None:
        raise NotFound(f"no sensor {sensor_id!r}; GET /api/traffic/sensors lists them")
    return sensor


def sensor_detail(session: Session, sensor_id: str, neighbours: list[str]) -> SensorDetail:
    """One sensor, its newest reading, and the neighbours the congestion model reads beside it."""
    sensor = _sensor_or_404(session, sensor_id)
    newest = stored.newest_of(session, sensor_id)
    row = (sensor.sensor_id, sensor.latitude, sensor.longitude, sensor.name, sensor.free_flow_mph)
    last = None if newest is None else (newest.timestamp.timestamp(), newest.speed_mph, newest.utc_offset_minutes)
    return SensorDetail(**_described(row, last, time.time()), neighbours=neighbours)


def weekday_profile(session: Session, sensor_id: str, weekday: int | None, weeks: int) -> SpeedProfile:
    """The sensor's speeds on one weekday (by default its newest reading's) over the `weeks` weeks up to its newest
    reading, by quarter hour of the local day: the 10th, 50th and 90th percentiles. Read from the hourly roll-ups
    and the hours not rolled up yet; once retention has dropped all its readings, up to its newest rolled-up hour."""
    _sensor_or_404(session, sensor_id)
    newest = stored.newest_of(session, sensor_id)
    end = (newest.timestamp, newest.utc_offset_minutes) if newest else rollups.newest_rolled(session, sensor_id)
    if end is None:
        return SpeedProfile(sensor_id=sensor_id, weekday=weekday, weeks=weeks, days=0, bins=[])
    until, offset = end
    if weekday is None:
        weekday = until.astimezone(timezone(timedelta(minutes=offset))).weekday()
    speeds: dict[int, dict[float, int]] = {}
    days: set[date] = set()
    since = until - timedelta(weeks=weeks)
    for start, histogram in rollups.profile_histograms(session, sensor_id, since, until, weekday):
        days.add(start.date())
        merged = speeds.setdefault((start.hour * 60 + start.minute) // PROFILE_MINUTES, {})
        for speed, count in histogram.items():
            merged[speed] = merged.get(speed, 0) + count
    bins = []
    for slot in sorted(speeds):
        low, median, high = rollups.quantiles(speeds[slot], (0.1, 0.5, 0.9))
        bins.append(ProfileBin(minute_of_day=slot * PROFILE_MINUTES, p10=low, median=median, p90=high,
                               readings=sum(speeds[slot].values())))  # fmt: skip
    return SpeedProfile(sensor_id=sensor_id, weekday=weekday, weeks=weeks, days=len(days), bins=bins)
