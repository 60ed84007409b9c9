"""Readings in bulk (one statement per call, the first of a (sensor, timestamp) kept) and the queries of the
traffic routes. PostgreSQL: COPY into a temporary table, then INSERT ... SELECT (joined to the registered sensors)
... ON CONFLICT DO NOTHING; SQLite: INSERT OR IGNORE, executemany, of readings the service checked."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg2.errors
from sqlalchemy import Float, cast, func, insert, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from backend.db import rollups
from backend.db.listings import Order, Slice, slice_of
from backend.db.models import LatestStoredReading, ReadingRow, Sensor, TrafficReading
from backend.db.partitions import days_of, ensure_days

NULL = "\\N"


def local_time(reading: TrafficReading | LatestStoredReading) -> datetime:
    """A stored reading's time in the zone it was sent in."""
    return reading.timestamp.astimezone(timezone(timedelta(minutes=reading.utc_offset_minutes)))


COLUMNS = ("sensor_id", "timestamp", "speed_mph", "volume", "occupancy", "utc_offset_minutes")

_PG_STAGING = """CREATE TEMPORARY TABLE IF NOT EXISTS readings_in (
    sensor_id text, "timestamp" timestamptz, speed_mph float8, volume float8, occupancy float8,
    utc_offset_minutes smallint) ON COMMIT DELETE ROWS"""
_INSERT = 'INSERT INTO traffic_readings (sensor_id, "timestamp", speed_mph, volume, occupancy, utc_offset_minutes)'
_FROM_STAGING = """SELECT r.sensor_id, r."timestamp", r.speed_mph, r.volume, r.occupancy, r.utc_offset_minutes
    FROM readings_in r JOIN sensors s ON s.sensor_id = r.sensor_id"""
# Tried first: a plain insert costs half of one that checks each row for a conflict. A call holding a reading
# stored already (a retry, a replay) fails it, and is stored again row by row with the check.
_PG_INSERT = f"{_INSERT} {_FROM_STAGING}"
_PG_MERGE = f'{_INSERT} {_FROM_STAGING} ON CONFLICT (sensor_id, "timestamp") DO NOTHING'
_LATEST_COLUMNS = ("timestamp", "speed_mph", "volume", "occupancy", "utc_offset_minutes")
_NEWEST_IN = f"""SELECT DISTINCT ON (r.sensor_id) {_FROM_STAGING.removeprefix("SELECT ")}
    ORDER BY r.sensor_id, r."timestamp" DESC"""
_PG_LATEST_UPDATE = f"""UPDATE latest_readings l SET {", ".join(f'"{c}" = n."{c}"' for c in _LATEST_COLUMNS)}
    FROM ({_NEWEST_IN}) n WHERE l.sensor_id = n.sensor_id AND n."timestamp" > l."timestamp"
"""
_PG_LATEST_ADD = f"""INSERT INTO latest_readings (sensor_id, {", ".join(f'"{c}"' for c in _LATEST_COLUMNS)})
    SELECT * FROM ({_NEWEST_IN}) n WHERE NOT EXISTS (SELECT 1 FROM latest_readings l WHERE l.sensor_id = n.sensor_id)
    ON CONFLICT (sensor_id) DO NOTHING"""
# Two calls updating the same sensors' rows in different orders would deadlock: they take turns, from here to
# their commit (their readings are stored by then, side by side).
_PG_LATEST_LOCK = "SELECT pg_advisory_xact_lock(hashtext('latest_readings'))"


def _pg_store(cursor: Any) -> int:
    """The staged readings stored, the newest of each sensor kept and their hours marked; returns how many were
    new."""
    inserted = _attempt(cursor, _PG_INSERT, _PG_MERGE, psycopg2.errors.UniqueViolation)
    cursor.execute(_PG_LATEST_LOCK)
    cursor.execute(_PG_LATEST_UPDATE)
    cursor.execute(_PG_LATEST_ADD)
    cursor.execute(rollups.PG_MARK_PENDING)
    return inserted


def _attempt(cursor: Any, fast: str, careful: str, failure: type[Exception]) -> int:
    """`fast` under a savepoint; after `failure`, rolled back to it and `careful` instead."""
    cursor.execute("SAVEPOINT store_readings")
    try:
        cursor.execute(fast)
    except failure:
        cursor.execute("ROLLBACK TO SAVEPOINT store_readings")
        cursor.execute(careful)
    count = cursor.rowcount
    cursor.execute("RELEASE SAVEPOINT store_readings")
    return count


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
    """Store the rows not stored yet, keep each sensor's newest in `latest_readings` and mark their hours for the
    roll-up, in the caller's transaction; returns how many were new. The caller commits."""
    if not rows:
        return 0
    connection = session.connection()
    ensure_days(connection, "traffic_readings", days_of({row[1] for row in rows}))
    if connection.dialect.name == "postgresql":
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(_PG_STAGING)
            cursor.copy_expert("COPY readings_in FROM STDIN", _copy_text(rows))
            inserted = _pg_store(cursor)
            cursor.execute("TRUNCATE readings_in")
            return inserted
        finally:
            cursor.close()
    statement = insert(TrafficReading.__table__).prefix_with("OR IGNORE")
    result = connection.execute(statement, [dict(zip(COLUMNS, row, strict=True)) for row in rows])
    _keep_newest(session, rows)
    rollups.mark_pending(session, rows)
    return result.rowcount


def _keep_newest(session: Session, rows: Sequence[ReadingRow]) -> None:
    newest: dict[str, ReadingRow] = {}
    for row in rows:
        if row[0] not in newest or row[1] > newest[row[0]][1]:
            newest[row[0]] = row
    statement = sqlite_insert(LatestStoredReading.__table__)
    statement = statement.on_conflict_do_update(
        index_elements=["sensor_id"],
        set_={c: statement.excluded[c] for c in _LATEST_COLUMNS},
        where=statement.excluded.timestamp > LatestStoredReading.__table__.c.timestamp,
    )
    session.connection().execute(statement, [dict(zip(COLUMNS, newest[s], strict=True)) for s in sorted(newest)])


def latest_per_sensor(session: Session) -> dict[str, LatestStoredReading]:
    """Each sensor's newest reading."""
    return {r.sensor_id: r for r in session.scalars(select(LatestStoredReading))}


SensorRow = tuple[str, float, float, str | None, float | None]  # id, latitude, longitude, name, free-flow speed
NewestRow = tuple[float, float, int]  # POSIX time, speed, utc_offset_minutes


def sensors_with_newest(session: Session, with_readings_only: bool) -> list[tuple[SensorRow, NewestRow | None]]:
    """Every registered sensor, by id, with its newest reading (None when it has none). Plain rows, the time as
    POSIX seconds (PostgreSQL's own arithmetic): a whole network's times are not parsed one by one."""
    newest = LatestStoredReading
    postgresql = session.get_bind().dialect.name == "postgresql"
    at = cast(func.extract("epoch", newest.timestamp), Float) if postgresql else newest.timestamp
    query = select(Sensor.sensor_id, Sensor.latitude, Sensor.longitude, Sensor.name, Sensor.free_flow_mph, at,
                   newest.speed_mph, newest.utc_offset_minutes)  # fmt: skip
    joined = query.join(newest, newest.sensor_id == Sensor.sensor_id, isouter=not with_readings_only)
    rows = session.connection().execute(joined.order_by(Sensor.sensor_id)).all()
    seconds: Callable[[Any], float] = float if postgresql else datetime.timestamp
    return [((s, lat, lon, name, free), None if at is None else (seconds(at), speed, offset))
            for s, lat, lon, name, free, at, speed, offset in rows]  # fmt: skip


def oldest_per_sensor(session: Session, sensor_ids: Sequence[str]) -> dict[str, TrafficReading]:
    """These sensors' oldest readings, one index probe each."""
    found = {}
    for sensor_id in sensor_ids:
        query = select(TrafficReading).where(TrafficReading.sensor_id == sensor_id)
        oldest = session.scalars(query.order_by(TrafficReading.timestamp).limit(1)).first()
        if oldest is not None:
            found[sensor_id] = oldest
    return found


def latest_time(session: Session, sensor_id: str) -> datetime | None:
    return session.scalar(select(LatestStoredReading.timestamp).where(LatestStoredReading.sensor_id == sensor_id))


def newest_of(session: Session, sensor_id: str) -> LatestStoredReading | None:
    return session.get(LatestStoredReading, sensor_id)


def newest_time(session: Session) -> datetime | None:
    """The newest reading's time over every sensor."""
    return session.scalar(select(func.max(LatestStoredReading.timestamp)))


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
    size: int,
    offset: int = 0,
    after: tuple[datetime, str] | None = None,
    count_limit: int | None = None,
) -> Slice[TrafficReading]:
    """Oldest first, `offset` rows in or after the (timestamp, sensor_id) `after`. One sensor's: a range of the
    primary key (sensor_id, timestamp), in its order. Every sensor's: the time index bounds the rows."""
    query = select(TrafficReading)
    if sensor_id is not None:
        query = query.where(TrafficReading.sensor_id == sensor_id)
    if start is not None:
        query = query.where(TrafficReading.timestamp >= start)
    if end is not None:
        query = query.where(TrafficReading.timestamp < end)
    return slice_of(session, query, order=READINGS_ORDER, size=size, offset=offset, after=after,
                    count_limit=count_limit)  # fmt: skip


READINGS_ORDER: Order = ((TrafficReading.timestamp, False), (TrafficReading.sensor_id, False))  # oldest first


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
