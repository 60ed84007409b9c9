"""The beat's upkeep on both databases: partitions ahead, roll-ups, and retention that leaves the usual-speed
profile as it was computed from the raw readings."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from backend.core.config import Settings
from backend.db import readings
from backend.db.models import LatestStoredReading, Prediction, RollupMark, Sensor, TrafficReading
from backend.db.partitions import partitions_of
from backend.db.records import insert_predictions
from backend.db.session import make_engine, session_factory
from backend.db.upkeep import ROLL_UP_HOURS_PER_STEP, upkeep
from backend.services.traffic import weekday_profile

START = datetime(2024, 3, 1, tzinfo=UTC)
DAYS = 21
ROUNDING = 0.05 + 1e-9  # the roll-ups keep speeds to 0.1 mph


def _speed(step: int) -> float:
    if step % 97 == 0:
        return 0.0  # missing, as the loaders send it
    return round(45 + 15 * math.sin(step / 40) + (step * 7919 % 13) / 3.7, 3)


def test_retention_after_roll_up_keeps_the_profile(database_url: str) -> None:
    engine = make_engine(database_url)
    sessions = session_factory(engine)
    try:
        with sessions() as session:
            session.add_all([Sensor(sensor_id="a", latitude=34, longitude=-118),
                             Sensor(sensor_id="gone", latitude=34, longitude=-118)])  # fmt: skip
            session.flush()  # stored readings must name registered sensors
            steps = DAYS * 288
            rows = [("a", START + timedelta(minutes=5 * i), _speed(i), None, None, -420) for i in range(steps)]
            readings.insert_new(session, rows)
            readings.insert_new(session, [("gone", START, 50.0, None, None, 0)])
            insert_predictions(session, rows=[
                {"created_at": START + timedelta(days=d), "model_name": "eclo", "model_version": "v", "inputs": {},
                 "latency_ms": 1.0, "record_id": f"r{d}"} for d in range(DAYS)])  # fmt: skip
            session.commit()
            before = [weekday_profile(session, "a", day, weeks=3) for day in range(7)]
        assert all(p.bins for p in before)

        newest = START + timedelta(minutes=5 * (steps - 1))
        now = newest + timedelta(hours=2)
        settings = Settings(readings_retention_days=10, records_retention_days=15)
        report = upkeep(settings, engine, sessions, now=now)

        cutoff = now - timedelta(days=10)
        assert report.hours_rolled_up >= DAYS * 24
        assert report.readings_kept_back is None
        with sessions() as session:
            assert session.scalar(select(func.count()).select_from(RollupMark)) == 0
            oldest = session.scalar(select(func.min(TrafficReading.timestamp)))
            assert oldest is not None and oldest >= cutoff - timedelta(days=1)
            assert session.scalar(select(func.min(Prediction.created_at))) >= now - timedelta(days=16)
            assert set(session.scalars(select(LatestStoredReading.sensor_id))) == {"a"}  # "gone" had only old readings
            after = [weekday_profile(session, "a", day, weeks=3) for day in range(7)]
        for old, new in zip(before, after, strict=True):
            assert (new.weekday, new.days) == (old.weekday, old.days)
            assert [b.minute_of_day for b in new.bins] == [b.minute_of_day for b in old.bins]
            for a, b in zip(old.bins, new.bins, strict=True):
                assert a.readings == b.readings
                for raw, rolled in ((a.p10, b.p10), (a.median, b.median), (a.p90, b.p90)):
                    assert abs(raw - rolled) <= ROUNDING, (a, b)
        if engine.dialect.name == "postgresql":
            assert report.readings_dropped >= 10
            with engine.connect() as connection:
                days = {p.day for p in partitions_of(connection, "traffic_readings")}
            assert {now.date() + timedelta(days=i) for i in range(3)} <= days
            assert min(days) >= cutoff.date() - timedelta(days=1)
    finally:
        engine.dispose()


def test_retention_waits_for_hours_not_rolled_up(database_url: str) -> None:
    """More marked hours than a pass rolls up (no time for a second step): the first pass keeps the raw readings,
    the next drops them."""
    engine = make_engine(database_url)
    sessions = session_factory(engine)
    hours = ROLL_UP_HOURS_PER_STEP + 6
    try:
        with sessions() as session:
            session.add(Sensor(sensor_id="a", latitude=34, longitude=-118))
            session.flush()
            for h in range(hours):  # one ingest call an hour: one mark each
                readings.insert_new(session, [("a", START + timedelta(hours=h), 50.0, None, None, 0)])
            session.commit()
        settings = Settings(readings_retention_days=1)
        now = START + timedelta(days=30)
        first = upkeep(settings, engine, sessions, now=now, roll_up_seconds=0)
        assert first.hours_rolled_up == ROLL_UP_HOURS_PER_STEP
        assert first.readings_kept_back is not None and first.readings_dropped == 0
        with sessions() as session:
            assert session.scalar(select(func.count()).select_from(TrafficReading)) == hours
        second = upkeep(settings, engine, sessions, now=now, roll_up_seconds=0)
        assert second.hours_rolled_up == 6 and second.readings_kept_back is None
        with sessions() as session:
            assert session.scalar(select(func.count()).select_from(TrafficReading)) == 0
            profile = weekday_profile(session, "a", None, weeks=4)
        assert sum(b.readings for b in profile.bins) > 0  # from the roll-ups alone
    finally:
        engine.dispose()
