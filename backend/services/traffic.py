"""Sensors and stored readings: registration (JSON or the loaders' CSV layout), the current state, history pages.
Times leave in the zone each reading came in (stored in UTC with its offset)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from backend.core.errors import DependencyUnavailable, InvalidRequest, NotFound, TooLarge
from backend.db import readings as stored
from backend.db.models import Sensor, TrafficReading
from backend.db.readings import local_time
from backend.ml.congestion.model import CongestionModel, congestion_level
from backend.schemas.pages import Page
from backend.schemas.traffic import (
    MAX_SENSORS_PER_CALL,
    LatestReading,
    ProfileBin,
    ReadingOut,
    SensorDetail,
    SensorIn,
    SensorOut,
    SensorsUpsertResult,
    SpeedProfile,
)

PROFILE_MINUTES = 15


def _latest(reading: TrafficReading | None, free_flow: float | None, now: datetime) -> LatestReading | None:
    if reading is None:
        return None
    level = congestion_level(reading.speed_mph, free_flow) if free_flow and reading.speed_mph > 0 else None
    return LatestReading(
        timestamp=local_time(reading),
        speed_mph=reading.speed_mph,
        level=level,
        age_seconds=round((now - reading.timestamp).total_seconds(), 1),
    )


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


def _described(sensor: Sensor, newest: TrafficReading | None, now: datetime) -> dict[str, Any]:
    """A sensor's fields as SensorOut (and SensorDetail) give them, with its newest reading."""
    return {"sensor_id": sensor.sensor_id, "latitude": sensor.latitude, "longitude": sensor.longitude,
            "name": sensor.name, "free_flow_mph": sensor.free_flow_mph,
            "latest": _latest(newest, sensor.free_flow_mph, now)}  # fmt: skip


def list_sensors(session: Session) -> list[SensorOut]:
    now = datetime.now(UTC)
    latest = stored.latest_per_sensor(session)
    return [SensorOut(**_described(s, latest.get(s.sensor_id), now))
            for s in session.scalars(select(Sensor).order_by(Sensor.sensor_id))]  # fmt: skip


def current(session: Session) -> list[SensorOut]:
    """Sensors that have readings, each with its newest."""
    return [s for s in list_sensors(session) if s.latest is not None]


def _page(items: list[TrafficReading], total: int, page: int, size: int) -> Page[ReadingOut]:
    out = [
        ReadingOut(sensor_id=r.sensor_id, timestamp=local_time(r), speed_mph=r.speed_mph, volume=r.volume,
                   occupancy=r.occupancy)
        for r in items
    ]  # fmt: skip
    return Page[ReadingOut].build(items=out, total=total, page=page, size=size)


def readings_of_day(
    session: Session, day: date, sensor_id: str | None, page: int, size: int, utc_offset_minutes: int = 0
) -> Page[ReadingOut]:
    """Readings of one calendar day (in UTC unless an offset is given), optionally of one sensor."""
    start = datetime(day.year, day.month, day.day, tzinfo=timezone(timedelta(minutes=utc_offset_minutes)))
    items, total = stored.page_of_readings(
        session, start=start, end=start + timedelta(days=1), sensor_id=sensor_id, page=page, size=size
    )
    return _page(items, total, page, size)


def readings_of_sensor(
    session: Session, sensor_id: str, since: datetime | None, until: datetime | None, page: int, size: int
) -> Page[ReadingOut]:
    _sensor_or_404(session, sensor_id)
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise InvalidRequest(f"{name} needs a time zone (Z or +hh:mm)", details=[{"field": name}])
    items, total = stored.page_of_readings(session, start=since, end=until, sensor_id=sensor_id, page=page, size=size)
    return _page(items, total, page, size)


def _sensor_or_404(session: Session, sensor_id: str) -> Sensor:
    sensor = session.get(Sensor, sensor_id)
    if sensor is None:
        raise NotFound(f"no sensor {sensor_id!r}; GET /api/traffic/sensors lists them")
    return sensor


def sensor_detail(session: Session, sensor_id: str, neighbours: list[str]) -> SensorDetail:
    """One sensor, its newest reading, and the neighbours the congestion model reads beside it."""
    sensor = _sensor_or_404(session, sensor_id)
    newest = stored.newest_of(session, sensor_id)
    return SensorDetail(**_described(sensor, newest, datetime.now(UTC)), neighbours=neighbours)


def weekday_profile(session: Session, sensor_id: str, weekday: int | None, weeks: int) -> SpeedProfile:
    """The sensor's speeds on one weekday (by default its newest reading's) over the `weeks` weeks up to its newest
    reading, by quarter hour of the local day: the 10th, 50th and 90th percentiles."""
    _sensor_or_404(session, sensor_id)
    newest = stored.newest_of(session, sensor_id)
    if newest is None:
        return SpeedProfile(sensor_id=sensor_id, weekday=weekday, weeks=weeks, days=0, bins=[])
    if weekday is None:
        weekday = local_time(newest).weekday()
    speeds: dict[int, list[float]] = {}
    days: set[date] = set()
    for reading in stored.window(session, [sensor_id], newest.timestamp - timedelta(weeks=weeks), newest.timestamp):
        moment = local_time(reading)
        if moment.weekday() != weekday or reading.speed_mph <= 0:
            continue
        days.add(moment.date())
        speeds.setdefault((moment.hour * 60 + moment.minute) // PROFILE_MINUTES, []).append(reading.speed_mph)
    bins = []
    for slot in sorted(speeds):
        values = sorted(speeds[slot])
        low, median, high = (values[min(len(values) - 1, int(q * len(values)))] for q in (0.1, 0.5, 0.9))
        bins.append(ProfileBin(minute_of_day=slot * PROFILE_MINUTES, p10=low, median=median, p90=high,
                               readings=len(values)))  # fmt: skip
    return SpeedProfile(sensor_id=sensor_id, weekday=weekday, weeks=weeks, days=len(days), bins=bins)
