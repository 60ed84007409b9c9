"""Readings validated one by one and stored once per (sensor, timestamp), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from backend.db.models import Sensor, TrafficReading
from backend.db.session import make_engine, session_factory
from backend.services.readings import EARLIEST, SensorDirectory, _parse_checked, ingest, parse_reading
from tests.fixtures.traffic import LA, flat, nested

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def _known(sensor: str) -> bool:
    return sensor in {"s1", "s2"}


def test_flat_and_nested_readings_parse_to_the_same_row() -> None:
    moment = datetime(2024, 5, 1, 4, 0, tzinfo=LA)
    row, problem = parse_reading(flat("s1", moment, 50.0, volume=900, occupancy=7.5), _known, NOW)
    assert problem is None and row == ("s1", moment.astimezone(UTC), 50.0, 900.0, 7.5, -480)
    assert parse_reading(nested("s1", moment, 50.0), _known, NOW) == (row, None)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"sensor_id": "nope"}, "sensor_id 'nope' is not a registered sensor"),
        ({"sensor_id": "a b"}, "sensor_id must be a string"),
        ({"timestamp": "2024-05-01T08:00:00"}, "timestamp has no time zone"),
        ({"timestamp": "yesterday"}, "timestamp is not an ISO-8601 time"),
        ({"timestamp": "2024-05-01T12:06:00Z"}, "more than 5 minutes in the future"),
        ({"speed_mph": 130}, "speed_mph must be a number from 0 to 120"),
        ({"speed_mph": True}, "speed_mph must be a number"),
        ({"volume": -1}, "volume must be a number from 0"),
        ({"occupancy": 101}, "occupancy must be a number from 0 to 100"),
    ],
)
def test_each_bad_field_is_named(change: dict, named: str) -> None:
    reading = {**flat("s1", NOW - timedelta(minutes=1), 50.0), **change}
    row, problem = parse_reading(reading, _known, NOW)
    assert row is None and named in problem


@pytest.mark.parametrize(
    "change",
    [
        {},
        {"speed_mph": 0},
        {"speed_mph": 120},
        {"speed_mph": 64},
        {"volume": 0, "occupancy": 100},
        {"volume": 100_000.0, "occupancy": 0.5},
        {"volume": None, "occupancy": 3},
        {"timestamp": "2024-05-01T12:05:00+00:00"},
        {"timestamp": EARLIEST.isoformat()},
        {"timestamp": "2024-05-01T04:00:00.250-08:00"},
        {"sensor_id": 7},
        {"speed_mph": float("nan")},
        {"speed_mph": float("inf")},
        {"speed_mph": "50"},
        {"volume": float("inf")},
        {"volume": True},
        {"occupancy": -0.1},
        {"timestamp": "1989-12-31T23:59:59Z"},
        {"timestamp": "2024-05-01T12:05:01Z"},
        {"sensor_id": "s3"},
        {"sensor_id": None},
        {"traffic_data": None},
    ],
)
def test_the_quick_path_agrees_with_the_checked_one(change: dict) -> None:
    """parse_reading's quick path (flat, registered, in range) gives what the field-by-field check gives."""
    reading = {**flat("s1", datetime(2024, 5, 1, 4, 0, tzinfo=LA), 50.0), **change}
    known = lambda sensor: sensor in {"s1", "s2", "7"}  # noqa: E731
    assert parse_reading(reading, known, NOW) == _parse_checked(reading, known, NOW)


def test_every_bad_field_of_one_reading_is_named_together() -> None:
    _, problem = parse_reading({"sensor_id": "zz", "timestamp": 5, "speed_mph": -3}, _known, NOW)
    assert "sensor_id" in problem and "timestamp" in problem and "speed_mph" in problem


def test_ingest_counts_duplicates_and_stores_each_reading_once(database_url: str) -> None:
    engine = make_engine(database_url)
    sessions = session_factory(engine)
    try:
        with sessions() as session:
            session.add_all([Sensor(sensor_id=s, latitude=34.0, longitude=-118.0) for s in ("s1", "s2")])
            session.commit()
        moment = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
        readings = [flat("s1", moment, 50.0), nested("s2", moment, 40.0), flat("s1", moment, 51.0),
                    {"sensor_id": "s9", "timestamp": moment.isoformat(), "speed_mph": 1.0},
                    flat("s2", moment + timedelta(minutes=5), 41.0)]  # fmt: skip
        first = ingest(sessions, SensorDirectory(sessions), readings, "test")
        assert (first.accepted, first.duplicates) == (3, 1)  # the second s1 at `moment` repeats the first
        assert [r["index"] for r in first.rejected] == [3]
        again = ingest(sessions, SensorDirectory(sessions), readings[:2], "test")
        assert (again.accepted, again.duplicates, again.rejected) == (0, 2, [])
        with sessions() as session:
            assert session.scalar(select(func.count()).select_from(TrafficReading)) == 3
            kept = session.scalar(select(TrafficReading).where(TrafficReading.sensor_id == "s1"))
            assert kept.speed_mph == 50.0 and kept.timestamp == moment  # the first one is kept
            assert session.scalar(select(TrafficReading.volume).where(TrafficReading.sensor_id == "s2").limit(1)) in (
                None, 900.0)  # fmt: skip
    finally:
        engine.dispose()
