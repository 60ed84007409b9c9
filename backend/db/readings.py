"""Readings in bulk (one statement per call, the first of a (sensor, timestamp) kept) and the queries of the
traffic routes. PostgreSQL: COPY into a temporary table, then INSERT ... SELECT (joined to the registered sensors)
... ON CONFLICT DO NOTHING; SQLite: INSERT OR IGNORE, executemany, of readings the service checked."""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from backend.db.models import Sensor, TrafficReading

# (sensor_id, UTC timestamp, speed_mph, volume, occupancy, utc_offset_minutes)
ReadingRow = tuple[str, datetime, float, float | None, float | None, int]
NULL = "\\N"


def local_time(reading: TrafficReading) -> datetime:
    """A stored reading's time in the zone it was sent in."""
    return reading.timestamp.astimezone(timezone(timedelta(minutes=reading.utc_offset_minutes)))


COLUMNS = ("sensor_id", "timestamp", "speed_mph", "volume", "occupancy", "utc_offset_minutes")

_PG_STAGING = """CREATE TEMPORARY TABLE IF NOT EXISTS readings_in (
    sensor_id text, "timestamp" timestamptz, speed_mph float8, volume float8, occupancy float8,
    utc_offset_minutes smallint) ON COMMIT DELETE ROWS"""
_PG_MERGE = """INSERT INTO traffic_readings (sensor_id, "timestamp", speed_mph, volume, occupancy, utc_offset_minutes)
    SELECT r.sensor_id, r."timestamp", r.speed_mph, r.volume, r.occupancy, r.utc_offset_minutes
    FROM readings_in r JOIN sensors s ON s.sensor_id = r.sensor_id
    ON CONFLICT (sensor_id, "timestamp") DO NOTHING"""


def _copy_text(rows: Sequence[ReadingRow]) -> io.StringIO:
    """COPY's text format; sensor ids are validated ([A-Za-z0-9_.:-]), so nothing needs escaping. The readings of
    one call share a few timestamps: each is written out once."""
    stamps: dict[datetime, str] = {}
    lines = [
        f"{s}\t{stamps.get(t) or stamps.setdefault(t, t.isoformat())}\t{v!r}\t"
        f"{NULL if q is None else repr(q)}\t{NULL if o is None else repr(o)}\t{z}\n"
        for s, t, v, q, o, z in rows
    ]
    return io.StringIO("".join(lines))


def insert_new(session: Session, rows: Sequence[ReadingRow]) -> int:
    """Store the rows not stored yet; returns how many were new. The caller commits."""
    if not rows:
        return 0
    if session.get_bind().dialect.name == "postgresql":
        cursor = session.connection().connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(_PG_STAGING)
            cursor.copy_expert("COPY readings_in FROM STDIN", _copy_text(rows))
            cursor.execute(_PG_MERGE)
            inserted = cursor.rowcount
            cursor.execute("TRUNCATE readings_in")
            return inserted
        finally:
            cursor.close()
    statement = insert(TrafficReading.__table__).prefix_with("OR IGNORE")
    result = session.connection().execute(statement, [dict(zip(COLUMNS, row, strict=True)) for row in rows])
    return result.rowcount


def latest_per_sensor(session: Session, earliest: bool = False) -> dict[str, TrafficReading]:
    """Each sensor's newest reading (with `earliest`, its oldest)."""
    edge = func.min(TrafficReading.timestamp) if earliest else func.max(TrafficReading.timestamp)
    newest = select(TrafficReading.sensor_id, edge.label("newest")).group_by(TrafficReading.sensor_id).subquery()
    query = select(TrafficReading).join(
        newest,
        (TrafficReading.sensor_id == newest.c.sensor_id) & (TrafficReading.timestamp == newest.c.newest),
    )
    return {r.sensor_id: r for r in session.scalars(query)}


def latest_time(session: Session, sensor_id: str) -> datetime | None:
    return session.scalar(select(func.max(TrafficReading.timestamp)).where(TrafficReading.sensor_id == sensor_id))


def newest_of(session: Session, sensor_id: str) -> TrafficReading | None:
    query = select(TrafficReading).where(TrafficReading.sensor_id == sensor_id)
    return session.scalars(query.order_by(TrafficReading.timestamp.desc()).limit(1)).first()


def newest_time(session: Session) -> datetime | None:
    """The newest reading's time over every sensor."""
    return session.scalar(select(func.max(TrafficReading.timestamp)))


def window(
    session: Session, sensor_ids: Sequence[str] | None, after: datetime, until: datetime
) -> list[TrafficReading]:
    """Readings of these sensors (None: of all) with after < timestamp <= until, oldest first."""
    query = select(TrafficReading).where(TrafficReading.timestamp > after, TrafficReading.timestamp <= until)
    if sensor_ids is not None:
        query = query.where(TrafficReading.sensor_id.in_(sensor_ids))
    return list(session.scalars(query.order_by(TrafficReading.timestamp, TrafficReading.sensor_id)))


def page_of_readings(
    session: Session,
    *,
    start: datetime | None,
    end: datetime | None,
    sensor_id: str | None,
    page: int,
    size: int,
) -> tuple[list[TrafficReading], int]:
    query = select(TrafficReading)
    if sensor_id is not None:
        query = query.where(TrafficReading.sensor_id == sensor_id)
    if start is not None:
        query = query.where(TrafficReading.timestamp >= start)
    if end is not None:
        query = query.where(TrafficReading.timestamp < end)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    items = session.scalars(
        query.order_by(TrafficReading.timestamp, TrafficReading.sensor_id).offset((page - 1) * size).limit(size)
    ).all()
    return list(items), total


def upsert_sensors(session: Session, sensors: Sequence[dict[str, Any]]) -> tuple[int, int]:
    """(created, updated); the caller commits."""
    existing = {s.sensor_id: s for s in session.scalars(select(Sensor).where(
        Sensor.sensor_id.in_([s["sensor_id"] for s in sensors])))}  # fmt: skip
    created = 0
    for fields in sensors:
        sensor = existing.get(fields["sensor_id"])
        if sensor is None:
            session.add(Sensor(**fields))
            created += 1
        else:
            for name, value in fields.items():
                setattr(sensor, name, value)
    return created, len(sensors) - created
