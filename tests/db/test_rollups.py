"""The usual-speed profile read from the hourly roll-ups (and the raw tail) matches the one scanned from raw
readings, on both databases, through late readings and retention."""

import random
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.orm import Session

from backend.db import readings, rollups
from backend.db.migrate import upgrade
from backend.db.models import LatestStoredReading, ReadingRollup, RollupMark, Sensor, TrafficReading
from backend.db.readings import ReadingRow, local_time
from backend.db.session import make_engine, session_factory
from backend.schemas.traffic import ProfileBin, SpeedProfile
from backend.services.traffic import PROFILE_MINUTES, weekday_profile

START = datetime(2026, 3, 2, tzinfo=UTC)
DAYS = 15
# a: a daylight-saving change half-way; b: an offset of quarter hours; c: one that is not (5 histograms an hour).
OFFSETS = {"a": (-480, -420), "b": (345, 345), "c": (-7, -7)}
ROUNDING = 0.05 + 1e-9


def _raw_profile(window: list[tuple[datetime, float]], sensor_id: str, weekday: int, weeks: int) -> SpeedProfile:
    """The profile as computed before the roll-ups, from the raw readings of its window (local times)."""
    speeds: dict[int, list[float]] = {}
    days: set[date] = set()
    for moment, speed in window:
        if moment.weekday() != weekday or speed <= 0:
            continue
        days.add(moment.date())
        speeds.setdefault((moment.hour * 60 + moment.minute) // PROFILE_MINUTES, []).append(speed)
    bins = []
    for slot in sorted(speeds):
        values = sorted(speeds[slot])
        low, median, high = (values[min(len(values) - 1, int(q * len(values)))] for q in (0.1, 0.5, 0.9))
        bins.append(ProfileBin(minute_of_day=slot * PROFILE_MINUTES, p10=low, median=median, p90=high,
                               readings=len(values)))  # fmt: skip
    return SpeedProfile(sensor_id=sensor_id, weekday=weekday, weeks=weeks, days=len(days), bins=bins)


CASES = [(sensor, weekday, weeks) for sensor in OFFSETS for weeks in (1, 2) for weekday in (None, 4)]


def _raw_profiles(session: Session) -> list[SpeedProfile]:
    profiles = []
    for sensor, weekday, weeks in CASES:
        newest = readings.newest_of(session, sensor)
        assert newest is not None
        window = session.execute(
            select(TrafficReading.timestamp, TrafficReading.speed_mph, TrafficReading.utc_offset_minutes).where(
                TrafficReading.sensor_id == sensor,
                TrafficReading.timestamp > newest.timestamp - timedelta(weeks=weeks),
                TrafficReading.timestamp <= newest.timestamp,
            )
        )
        local = [(t.astimezone(timezone(timedelta(minutes=o))), v) for t, v, o in window]
        weekday = local_time(newest).weekday() if weekday is None else weekday
        profiles.append(_raw_profile(local, sensor, weekday, weeks))
    return profiles


def _assert_profiles(session: Session, expected: list[SpeedProfile], only: str | None = None) -> None:
    for case, wanted in zip(CASES, expected, strict=True):
        if only not in (None, case[0]):
            continue
        found = weekday_profile(session, *case)
        assert (found.weekday, found.days) == (wanted.weekday, wanted.days), case
        assert [(b.minute_of_day, b.readings) for b in found.bins] == [
            (b.minute_of_day, b.readings) for b in wanted.bins
        ], case
        for f, w in zip(found.bins, wanted.bins, strict=True):
            assert abs(f.p10 - w.p10) <= ROUNDING and abs(f.median - w.median) <= ROUNDING, (case, f, w)
            assert abs(f.p90 - w.p90) <= ROUNDING, (case, f, w)


def _generated(until: datetime, rng: random.Random) -> tuple[list[ReadingRow], list[ReadingRow]]:
    """5-minute readings of each sensor from START to `until`, some missing (speed 0); and some of a few hours left
    out, to arrive late."""
    kept: list[ReadingRow] = []
    late: list[ReadingRow] = []
    moment = START
    while moment <= until:
        for sensor, (before, after) in OFFSETS.items():
            offset = before if moment < START + timedelta(days=DAYS / 2) else after
            speed = 0.0 if rng.random() < 0.06 else round(rng.uniform(15, 70), 2)
            arrives_late = moment.hour in (3, 17) and moment.day % 5 == 1 and rng.random() < 0.4
            (late if arrives_late else kept).append((sensor, moment, speed, None, None, offset))
        moment += timedelta(minutes=5)
    return kept, late


def _ingest(session: Session, rows: list[ReadingRow]) -> None:
    for start in range(0, len(rows), 2000):
        readings.insert_new(session, rows[start : start + 2000])
    session.commit()


def _roll_all(session: Session) -> int:
    hours = rollups.roll_up(session, limit_hours=10_000)
    session.commit()
    assert session.scalar(select(func.count()).select_from(RollupMark)) == 0
    return hours


@pytest.fixture
def sensors(db_session: Session) -> Session:
    db_session.add_all([Sensor(sensor_id=s, latitude=34.0, longitude=-118.0) for s in OFFSETS])
    db_session.commit()
    return db_session


def test_the_profile_from_rollups_is_the_raw_one(sensors: Session) -> None:
    session = sensors
    rng = random.Random(7)
    # The newest reading at :35: the window's first hour is cut inside a quarter hour.
    kept, late = _generated(START + timedelta(days=DAYS, hours=10, minutes=35), rng)
    _ingest(session, kept)
    expected = _raw_profiles(session)
    _assert_profiles(session, expected)  # every hour is marked: all read raw

    assert _roll_all(session) == DAYS * 24 + 11
    _assert_profiles(session, expected)
    rolled = {(r.sensor_id, r.hour, r.utc_offset_minutes): r for r in session.scalars(select(ReadingRollup))}
    by_hour: dict[datetime, list[tuple[str, datetime, float, int]]] = defaultdict(list)
    for sensor, moment, speed, _, _, offset in kept:
        by_hour[moment.replace(minute=0)].append((sensor, moment, speed, offset))
    summed = [row for hour, rows in by_hour.items() for row in rollups.summed(hour, rows)]
    assert len(summed) == len(rolled)
    for row in summed:
        stored = rolled[row["sensor_id"], row["hour"], row["utc_offset_minutes"]]
        assert (stored.readings, stored.missing, stored.quarters) == (row["readings"], row["missing"], row["quarters"])
        assert (stored.speed_min, stored.speed_max) == (row["speed_min"], row["speed_max"])
        assert stored.speed_sum == pytest.approx(row["speed_sum"])

    # Late readings of hours already rolled up: read raw while marked, then rolled up again.
    _ingest(session, late)
    expected = _raw_profiles(session)
    _assert_profiles(session, expected)
    _roll_all(session)
    _assert_profiles(session, expected)

    # Retention drops the raw readings before a cutoff inside an hour, the window's first hour among them (with the
    # newest reading at :55, the raw scan too reads whole quarter hours of it).
    more, _ = _generated(START + timedelta(days=DAYS, hours=12, minutes=55), random.Random(8))
    _ingest(session, [row for row in more if row[1] > START + timedelta(days=DAYS, hours=10, minutes=35)])
    _roll_all(session)
    expected = _raw_profiles(session)
    cutoff = START + timedelta(days=DAYS - 3, minutes=7)
    session.execute(delete(TrafficReading).where(TrafficReading.timestamp < cutoff))
    session.commit()
    _assert_profiles(session, expected)

    # Marks of hours whose raw readings are gone or partly gone: their roll-ups are kept.
    hours = session.scalars(select(ReadingRollup.hour).distinct().where(ReadingRollup.hour < cutoff)).all()
    hours = [*hours[::7], cutoff.replace(minute=0)]
    session.execute(insert(RollupMark), [{"hour": hour} for hour in hours])
    session.commit()
    _roll_all(session)
    _assert_profiles(session, expected)

    # All of a sensor's raw readings gone: its profile ends with its newest rolled-up hour.
    session.execute(delete(TrafficReading).where(TrafficReading.sensor_id == "b"))
    session.execute(delete(LatestStoredReading).where(LatestStoredReading.sensor_id == "b"))
    session.commit()
    _assert_profiles(session, expected, only="b")


def test_a_mark_made_while_rolling_up_survives(
    sensors: Session, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = sensors
    hour = START + timedelta(hours=5)
    _ingest(session, [("a", hour + timedelta(minutes=5), 50.0, None, None, 0)])
    engine = make_engine(database_url)
    roll_hour = rollups._roll_hour

    def with_a_concurrent_ingest(session: Session, rolled: datetime) -> None:
        with session_factory(engine)() as other:
            readings.insert_new(other, [("a", hour + timedelta(minutes=10), 52.0, None, None, 0)])
            other.commit()
        roll_hour(session, rolled)

    monkeypatch.setattr(rollups, "_roll_hour", with_a_concurrent_ingest)
    assert rollups.roll_up(session) == 1
    session.commit()
    monkeypatch.undo()
    assert session.scalars(select(RollupMark.hour)).all() == [hour]
    assert rollups.roll_up(session) == 1
    session.commit()
    engine.dispose()
    assert session.scalars(select(RollupMark)).all() == []
    assert session.scalars(select(ReadingRollup.readings)).all() == [2]


def test_one_roll_up_at_a_time_on_postgresql(sensors: Session, database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer at a time anyway")
    _ingest(sensors, [("a", START, 50.0, None, None, 0), ("a", START + timedelta(hours=1), 50.0, None, None, 0)])
    engine = make_engine(database_url)
    try:
        with session_factory(engine)() as other:
            assert rollups.roll_up(sensors, limit_hours=1) == 1
            assert rollups.roll_up(other) == 0
            sensors.commit()
            other.rollback()
            assert rollups.roll_up(other) == 1
            other.commit()
    finally:
        engine.dispose()


def test_the_migration_marks_the_hours_of_existing_readings(empty_database_url: str) -> None:
    upgrade(empty_database_url, "0011")
    engine = make_engine(empty_database_url)
    moments = [START + timedelta(minutes=m) for m in (0, 25, 65, 24 * 60 + 5)]
    with engine.begin() as connection:
        connection.execute(insert(Sensor), [{"sensor_id": "a", "latitude": 0.0, "longitude": 0.0}])
        connection.execute(insert(TrafficReading), [{"sensor_id": "a", "timestamp": m, "speed_mph": 40.0,
                                                     "utc_offset_minutes": 60} for m in moments])  # fmt: skip
    upgrade(empty_database_url)
    try:
        with session_factory(engine)() as session:
            marked = sorted(session.scalars(select(RollupMark.hour)))
            assert marked == [START, START + timedelta(hours=1), START + timedelta(days=1)]
            assert rollups.roll_up(session) == 3
            session.commit()
            profile = weekday_profile(session, "a", START.weekday(), 1)
            assert [(b.minute_of_day, b.readings) for b in profile.bins] == [(60, 1), (75, 1), (120, 1)]
    finally:
        engine.dispose()


def test_quantiles_of_a_histogram_are_those_of_the_values() -> None:
    rng = random.Random(3)
    for n in (1, 2, 3, 9, 10, 11, 57):
        values = sorted(rng.choice((40.0, 41.5, 55.0, 60.2)) for _ in range(n))
        histogram: dict[float, int] = defaultdict(int)
        for value in values:
            histogram[value] += 1
        wanted = [values[min(n - 1, int(q * n))] for q in (0.1, 0.5, 0.9)]
        assert rollups.quantiles(histogram, (0.1, 0.5, 0.9)) == wanted


def test_an_ingest_marks_each_utc_hour_once_whatever_the_session_zone(sensors: Session) -> None:
    """The PostgreSQL statement truncates in UTC: in a zone half an hour off, its hours would be too."""
    if sensors.get_bind().dialect.name == "postgresql":
        sensors.execute(text("SET TIME ZONE 'Asia/Kolkata'"))
    plus_nine = timezone(timedelta(hours=9))
    rows: list[ReadingRow] = [
        ("a", datetime(2026, 3, 2, 9, 5, tzinfo=plus_nine).astimezone(UTC), 1.0, None, None, 540),
        ("b", datetime(2026, 3, 2, 0, 55, tzinfo=UTC), 1.0, None, None, 0),
        ("a", datetime(2026, 3, 2, 1, 0, tzinfo=UTC), 1.0, None, None, 0),
    ]
    readings.insert_new(sensors, rows)
    sensors.commit()
    assert sensors.scalars(select(RollupMark.hour).order_by(RollupMark.hour)).all() == [
        datetime(2026, 3, 2, 0, tzinfo=UTC), datetime(2026, 3, 2, 1, tzinfo=UTC)
    ]  # fmt: skip
