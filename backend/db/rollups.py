"""Hourly roll-ups of the readings, which outlive the raw readings (retention), and the usual-speed profile read
from them.

Each ingest call marks the UTC hours it wrote to (`PG_MARK_PENDING` in the merge's transaction on PostgreSQL,
`mark_pending` on SQLite). `roll_up` recomputes the marked hours from their raw readings, then deletes the marks it
read: a mark made meanwhile stays, and its hour is rolled up again by the next run. The profile reads the roll-ups
of the hours without a mark and the raw readings of the others (the recent hours, not rolled up yet).

A row covers one sensor, UTC hour and offset; its histograms are by local quarter hour: with an offset of o
minutes and r = o mod 15, a reading at minute m of the hour is in histogram (m + r) // 15, which starts at local
time hour + o - r + 15 * index (a fifth histogram exists only when r > 0)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import ColumnElement, delete, insert, or_, select, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from backend.db.models import ReadingRollup, ReadingRow, RollupMark, TrafficReading

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
QUARTER_MINUTES = 15
QUARTER = timedelta(minutes=QUARTER_MINUTES)
DELETE_STEP = 500

# Hours in UTC whatever the session's time zone.
PG_MARK_PENDING = """INSERT INTO reading_rollup_marks (hour)
    SELECT DISTINCT date_trunc('hour', "timestamp" AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' FROM readings_in"""

_PG_TRY_LOCK = text("SELECT pg_try_advisory_xact_lock(hashtext('reading_rollups'))")

# `_roll_hour` in one statement.
_PG_ROLL_HOUR = """WITH cells AS (
    SELECT sensor_id, utc_offset_minutes AS offset_minutes,
        (extract(minute FROM "timestamp" AT TIME ZONE 'UTC')::int + mod(mod(utc_offset_minutes, 15) + 15, 15)) / 15
            AS quarter,
        CASE WHEN speed_mph > 0 THEN round(speed_mph * 10)::int END AS tenths,
        count(*) AS n, sum(speed_mph) AS speed_sum, min(speed_mph) AS speed_min, max(speed_mph) AS speed_max
    FROM traffic_readings WHERE "timestamp" >= :hour AND "timestamp" < :hour + interval '1 hour'
    GROUP BY 1, 2, 3, 4
), sums AS (
    SELECT sensor_id, offset_minutes, sum(n)::int AS readings,
        coalesce(sum(n) FILTER (WHERE tenths IS NULL), 0)::int AS missing,
        coalesce(sum(speed_sum) FILTER (WHERE tenths IS NOT NULL), 0) AS speed_sum,
        min(speed_min) FILTER (WHERE tenths IS NOT NULL) AS speed_min,
        max(speed_max) FILTER (WHERE tenths IS NOT NULL) AS speed_max,
        coalesce(json_agg(json_build_array(tenths, n) ORDER BY tenths)
                 FILTER (WHERE tenths IS NOT NULL AND quarter = 0), '[]') AS q0,
        coalesce(json_agg(json_build_array(tenths, n) ORDER BY tenths)
                 FILTER (WHERE tenths IS NOT NULL AND quarter = 1), '[]') AS q1,
        coalesce(json_agg(json_build_array(tenths, n) ORDER BY tenths)
                 FILTER (WHERE tenths IS NOT NULL AND quarter = 2), '[]') AS q2,
        coalesce(json_agg(json_build_array(tenths, n) ORDER BY tenths)
                 FILTER (WHERE tenths IS NOT NULL AND quarter = 3), '[]') AS q3,
        coalesce(json_agg(json_build_array(tenths, n) ORDER BY tenths)
                 FILTER (WHERE tenths IS NOT NULL AND quarter = 4), '[]') AS q4
    FROM cells GROUP BY 1, 2
)
INSERT INTO reading_rollups AS old
    (sensor_id, hour, utc_offset_minutes, readings, missing, speed_sum, speed_min, speed_max, quarters)
SELECT sensor_id, :hour, offset_minutes, readings, missing, speed_sum, speed_min, speed_max,
    CASE WHEN mod(offset_minutes, 15) = 0 THEN json_build_array(q0, q1, q2, q3)
         ELSE json_build_array(q0, q1, q2, q3, q4) END
FROM sums
ON CONFLICT (sensor_id, hour, utc_offset_minutes) DO UPDATE SET readings = excluded.readings,
    missing = excluded.missing, speed_sum = excluded.speed_sum, speed_min = excluded.speed_min,
    speed_max = excluded.speed_max, quarters = excluded.quarters
WHERE excluded.readings >= old.readings"""

# The start of a local quarter hour (aware, in the readings' offset) and its speeds > 0 with their counts.
QuarterSpeeds = tuple[datetime, dict[float, int]]


def _hour_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _quarter_of(minute: int, offset_minutes: int) -> int:
    return (minute + offset_minutes % QUARTER_MINUTES) // QUARTER_MINUTES


def _first_quarter(hour: datetime, offset_minutes: int) -> datetime:
    """Where the first histogram of a roll-up row starts, in local time."""
    zone = timezone(timedelta(minutes=offset_minutes))
    return (hour + timedelta(minutes=offset_minutes - offset_minutes % QUARTER_MINUTES)).replace(tzinfo=zone)


def mark_pending(session: Session, rows: Sequence[ReadingRow]) -> None:
    """SQLite's `PG_MARK_PENDING`: mark the hours of these readings, in the caller's transaction."""
    hours = sorted({_hour_of(row[1]) for row in rows})
    if hours:
        session.execute(insert(RollupMark), [{"hour": hour} for hour in hours])


def summed(hour: datetime, readings: Iterable[tuple[str, datetime, float, int]]) -> list[dict[str, Any]]:
    """The roll-up rows of one hour from its (sensor_id, timestamp, speed_mph, utc_offset_minutes) readings."""
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for sensor_id, moment, speed, offset in readings:
        row = rows.get((sensor_id, offset))
        if row is None:
            quarters: list[Counter[int]] = [Counter() for _ in range(4 if offset % QUARTER_MINUTES == 0 else 5)]
            row = rows[sensor_id, offset] = {"sensor_id": sensor_id, "hour": hour, "utc_offset_minutes": offset,
                                             "readings": 0, "missing": 0, "speed_sum": 0.0, "speed_min": None,
                                             "speed_max": None, "quarters": quarters}  # fmt: skip
        row["readings"] += 1
        if speed <= 0:
            row["missing"] += 1
            continue
        row["speed_sum"] += speed
        row["speed_min"] = speed if row["speed_min"] is None else min(row["speed_min"], speed)
        row["speed_max"] = speed if row["speed_max"] is None else max(row["speed_max"], speed)
        row["quarters"][_quarter_of(moment.astimezone(UTC).minute, offset)][round(speed * 10)] += 1
    for row in rows.values():
        row["quarters"] = [sorted(map(list, histogram.items())) for histogram in row["quarters"]]
    return list(rows.values())


def _roll_hour(session: Session, hour: datetime) -> None:
    """Recompute the hour's rows from its raw readings. A row is replaced only by one of at least as many readings:
    raw readings are never changed, only added or dropped by retention, so fewer means some were dropped and the
    roll-up is the better record of the hour."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(_PG_ROLL_HOUR), {"hour": hour})
        return
    readings = session.execute(
        select(TrafficReading.sensor_id, TrafficReading.timestamp, TrafficReading.speed_mph,
               TrafficReading.utc_offset_minutes)
        .where(TrafficReading.timestamp >= hour, TrafficReading.timestamp < hour + HOUR)
    )  # fmt: skip
    rows = summed(hour, readings)
    if not rows:
        return
    statement = sqlite.insert(ReadingRollup)
    replaced = ("readings", "missing", "speed_sum", "speed_min", "speed_max", "quarters")
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["sensor_id", "hour", "utc_offset_minutes"],
            set_={name: statement.excluded[name] for name in replaced},
            where=statement.excluded.readings >= ReadingRollup.readings,
        ),
        rows,
    )


def roll_up(session: Session, *, limit_hours: int = 24) -> int:
    """Roll up the `limit_hours` oldest marked hours and delete the marks read; returns the hours rolled up (0 on
    PostgreSQL while another transaction rolls up: two would only redo each other's work). The caller commits."""
    if session.get_bind().dialect.name == "postgresql" and not session.scalar(_PG_TRY_LOCK):
        return 0
    oldest = select(RollupMark.hour).group_by(RollupMark.hour).order_by(RollupMark.hour).limit(limit_hours)
    marks = session.execute(select(RollupMark.id, RollupMark.hour).where(RollupMark.hour.in_(oldest))).all()
    hours = sorted({hour for _, hour in marks})
    for hour in hours:
        _roll_hour(session, hour)
    ids = [mark_id for mark_id, _ in marks]
    for start in range(0, len(ids), DELETE_STEP):
        session.execute(delete(RollupMark).where(RollupMark.id.in_(ids[start : start + DELETE_STEP])))
    return len(hours)


def newest_rolled(session: Session, sensor_id: str) -> tuple[datetime, int] | None:
    """The last instant of the sensor's newest rolled-up hour and that hour's offset: where its profile ends once
    retention has dropped all its raw readings."""
    newest = session.execute(
        select(ReadingRollup.hour, ReadingRollup.utc_offset_minutes)
        .where(ReadingRollup.sensor_id == sensor_id).order_by(ReadingRollup.hour.desc()).limit(1)
    ).first()  # fmt: skip
    return None if newest is None else (newest[0] + HOUR - timedelta(microseconds=1), newest[1])


def _hours_of_weekday(since: datetime, until: datetime, weekday: int) -> ColumnElement[bool]:
    """The hours that may hold readings of that local weekday: offsets (any up to a day) put a local day's
    readings in the UTC hours from a day before it to a day after it."""
    day = since.astimezone(UTC).date() - timedelta(days=1)
    day += timedelta(days=(weekday - day.weekday()) % 7)
    ranges = []
    while day <= until.astimezone(UTC).date() + timedelta(days=1):
        midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
        ranges.append((ReadingRollup.hour > midnight - DAY - HOUR) & (ReadingRollup.hour < midnight + 2 * DAY))
        day += timedelta(weeks=1)
    return or_(*ranges)


def _runs(hours: set[datetime]) -> list[tuple[datetime, datetime]]:
    """Consecutive hours as [start, end) ranges."""
    runs: list[tuple[datetime, datetime]] = []
    for hour in sorted(hours):
        if runs and runs[-1][1] == hour:
            runs[-1] = (runs[-1][0], hour + HOUR)
        else:
            runs.append((hour, hour + HOUR))
    return runs


def profile_histograms(
    session: Session, sensor_id: str, since: datetime, until: datetime, weekday: int
) -> list[QuarterSpeeds]:
    """The sensor's speeds > 0 of since < timestamp <= until on one local weekday, by local quarter hour: from the
    roll-ups, and from the raw readings for the hours still marked and for the first hour, which the window cuts
    (its roll-up is taken, whole quarters only, once its raw readings are gone)."""
    first, last = _hour_of(since), _hour_of(until)
    marked = set(
        session.scalars(select(RollupMark.hour).distinct().where(RollupMark.hour >= first, RollupMark.hour <= last))
    )
    raw_query = select(TrafficReading.timestamp, TrafficReading.speed_mph, TrafficReading.utc_offset_minutes).where(
        TrafficReading.sensor_id == sensor_id,
        or_(*((TrafficReading.timestamp >= start) & (TrafficReading.timestamp < end)
              for start, end in _runs(marked | {first}))),
        TrafficReading.timestamp <= until,
    )  # fmt: skip
    raw: dict[tuple[datetime, int], list[tuple[datetime, float]]] = {}
    for moment, speed, offset in session.execute(raw_query):
        raw.setdefault((_hour_of(moment), offset), []).append((moment, speed))
    rolled = session.execute(
        select(ReadingRollup.hour, ReadingRollup.utc_offset_minutes, ReadingRollup.readings, ReadingRollup.quarters)
        .where(ReadingRollup.sensor_id == sensor_id, ReadingRollup.hour >= first, ReadingRollup.hour <= last,
               _hours_of_weekday(since, until, weekday))
    )  # fmt: skip
    found: list[QuarterSpeeds] = []
    for hour, offset, count, quarters in rolled:
        if hour in marked or (hour == first and len(raw.get((hour, offset), ())) == count):
            continue
        raw.pop((hour, offset), None)
        start = _first_quarter(hour, offset)
        for pairs in quarters:
            # In the first hour, only the quarters that start after `since` (the first one starts before the hour).
            if pairs and start.weekday() == weekday and (hour != first or start > since):
                found.append((start, {tenths / 10: n for tenths, n in pairs}))
            start += QUARTER
    for (_, offset), readings in raw.items():
        zone = timezone(timedelta(minutes=offset))
        for moment, speed in readings:
            local = moment.astimezone(zone)
            if speed > 0 and moment > since and local.weekday() == weekday:
                start = local.replace(minute=local.minute - local.minute % QUARTER_MINUTES, second=0, microsecond=0)
                found.append((start, {speed: 1}))
    return found


def quantiles(histogram: dict[float, int], fractions: Sequence[float]) -> list[float]:
    """The raw readings' percentile (`values[min(n - 1, int(q * n))]` of the sorted values) on a histogram."""
    n = sum(histogram.values())
    ranks = [min(n - 1, int(q * n)) for q in fractions]
    found: dict[int, float] = {}
    seen = 0
    for value, count in sorted(histogram.items()):
        for rank in ranks:
            if seen <= rank < seen + count:
                found[rank] = value
        seen += count
    return [found[rank] for rank in ranks]
