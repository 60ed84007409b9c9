"""Daily partitions (PostgreSQL), the newest-reading table kept by the ingest statement (both databases), retention,
and the migration to the partitioned layout and back with data in it."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select, text

from backend.db import readings
from backend.db.migrate import downgrade, upgrade
from backend.db.models import Prediction, Sensor, TrafficReading
from backend.db.partitions import drop_before, is_partitioned, partition_name, partitions_of
from backend.db.records import insert_predictions
from backend.db.session import make_engine, session_factory
from tests.fixtures.database import POSTGRES_AVAILABLE, postgres_database

needs_postgres = pytest.mark.skipif(not POSTGRES_AVAILABLE, reason="PostgreSQL does not answer")
DAY0 = datetime(2024, 3, 1, tzinfo=UTC)


def _sensors(engine: Engine, ids: list[str]) -> None:
    with session_factory(engine)() as session:
        session.add_all(Sensor(sensor_id=s, latitude=34.0, longitude=-118.0) for s in ids)
        session.commit()


def _ingest(engine: Engine, rows: list[readings.ReadingRow]) -> int:
    with session_factory(engine)() as session:
        count = readings.insert_new(session, rows)
        session.commit()
        return count


def _days_of_readings(
    sensors: list[str], first: datetime, days: int, step_minutes: int = 60
) -> list[readings.ReadingRow]:
    steps = days * 24 * 60 // step_minutes
    return [(s, first + timedelta(minutes=step_minutes * i), 40.0 + i % 20, None, None, -480)
            for i in range(steps) for s in sensors]  # fmt: skip


def test_latest_reading_follows_the_newest_and_ignores_older(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        _sensors(engine, ["a", "b"])
        t = DAY0
        assert _ingest(engine, [("a", t, 50.0, None, None, 0), ("a", t + timedelta(minutes=5), 51.0, 3.0, None, 60),
                                ("b", t, 60.0, None, None, 0)]) == 3  # fmt: skip
        assert _ingest(engine, [("a", t, 99.0, None, None, 0), ("b", t, 50.0, None, None, 0)]) == 0  # stored already
        _ingest(engine, [("a", t - timedelta(days=3), 10.0, None, None, 0)])  # older: stored, not the newest
        _ingest(engine, [("b", t + timedelta(days=2), 62.5, None, 0.1, 0)])
        with session_factory(engine)() as session:
            latest = readings.latest_per_sensor(session)
            assert set(latest) == {"a", "b"}
            assert (latest["a"].timestamp, latest["a"].speed_mph, latest["a"].volume) == (
                t + timedelta(minutes=5),
                51.0,
                3.0,
            )
            assert readings.local_time(latest["a"]).utcoffset() == timedelta(minutes=60)
            assert (latest["b"].timestamp, latest["b"].occupancy) == (t + timedelta(days=2), 0.1)
            assert readings.newest_time(session) == t + timedelta(days=2)
            assert readings.oldest_per_sensor(session, ["a", "b"])["a"].timestamp == t - timedelta(days=3)
            # the newest of each sensor by a scan of every reading agrees
            scanned = dict(session.execute(select(TrafficReading.sensor_id, func.max(TrafficReading.timestamp))
                                           .group_by(TrafficReading.sensor_id)).all())  # fmt: skip
            assert scanned == {s: r.timestamp for s, r in latest.items()}
    finally:
        engine.dispose()


@needs_postgres
def test_a_write_makes_the_partitions_of_its_days() -> None:
    with postgres_database() as url:
        upgrade(url)
        engine = make_engine(url)
        try:
            _sensors(engine, ["a"])
            far = datetime(2012, 3, 5, 23, 59, tzinfo=UTC)
            assert (
                _ingest(
                    engine, [("a", far, 50.0, None, None, 0), ("a", far + timedelta(minutes=2), 51.0, None, None, 0)]
                )
                == 2
            )
            with session_factory(engine)() as session:
                insert_predictions(session, rows=[{"created_at": far, "model_name": "eclo", "model_version": "v",
                                                   "inputs": {}, "latency_ms": 1.0, "record_id": "r1"}])  # fmt: skip
                session.commit()
            with engine.connect() as connection:
                assert is_partitioned(connection, "traffic_readings") and is_partitioned(connection, "predictions")
                days = {p.day for p in partitions_of(connection, "traffic_readings")}
                assert {far.date(), far.date() + timedelta(days=1)} <= days
                assert far.date() in {p.day for p in partitions_of(connection, "predictions")}
                placed = connection.execute(text("SELECT tableoid::regclass::text, speed_mph FROM traffic_readings "
                                                 "ORDER BY 2")).all()  # fmt: skip
            names = [f"partitions.{partition_name('traffic_readings', far.date() + timedelta(days=i))}" for i in (0, 1)]
            assert placed == [(names[0], 50.0), (names[1], 51.0)]
        finally:
            engine.dispose()


def test_retention_removes_old_rows_only(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        _sensors(engine, ["a", "b"])
        _ingest(engine, _days_of_readings(["a", "b"], DAY0, days=5))
        dropped = drop_before(engine, "traffic_readings", DAY0 + timedelta(days=2, hours=6))
        with session_factory(engine)() as session:
            oldest = session.scalar(select(func.min(TrafficReading.timestamp)))
            count = session.scalar(select(func.count()).select_from(TrafficReading))
        if engine.dialect.name == "postgresql":
            assert dropped == 2  # whole days only: the day of the cut-off stays
            assert oldest == DAY0 + timedelta(days=2) and count == 2 * 3 * 24
        else:
            assert dropped == 2 * (2 * 24 + 6)
            assert oldest == DAY0 + timedelta(days=2, hours=6) and count == 2 * (3 * 24 - 6)
    finally:
        engine.dispose()


@needs_postgres
def test_dropping_partitions_does_not_block_ingest() -> None:
    """Ingest runs in a thread, call after call, while retention drops 20 days of partitions: every call stores
    its rows, none waits on the drop."""
    with postgres_database() as url:
        upgrade(url)
        engine = make_engine(url)
        sensors = [f"s{i}" for i in range(50)]
        try:
            _sensors(engine, sensors)
            _ingest(engine, _days_of_readings(sensors, DAY0, days=20, step_minutes=30))
            now = datetime.now(UTC).replace(microsecond=0)
            durations: list[float] = []
            stored: list[int] = []
            errors: list[BaseException] = []
            done = threading.Event()

            def ingest_meanwhile() -> None:
                step = 0
                while not done.is_set():
                    moment = now + timedelta(seconds=step)
                    started = time.perf_counter()
                    try:
                        stored.append(_ingest(engine, [(s, moment, 50.0, None, None, 0) for s in sensors]))
                    except BaseException as exc:  # noqa: BLE001 - reported by the test
                        errors.append(exc)
                        return
                    durations.append(time.perf_counter() - started)
                    step += 1

            writer = threading.Thread(target=ingest_meanwhile)
            writer.start()
            time.sleep(0.3)
            calls_before = len(durations)
            started = time.perf_counter()
            dropped = drop_before(engine, "traffic_readings", DAY0 + timedelta(days=20))
            drop_seconds = time.perf_counter() - started
            calls_during = len(durations) - calls_before
            time.sleep(0.3)
            done.set()
            writer.join(timeout=30)
            assert not errors, errors
            assert dropped == 20
            assert calls_during >= 3, f"only {calls_during} ingest calls in the {drop_seconds:.2f} s of the drop"
            assert all(count == len(sensors) for count in stored)
            assert max(durations) < 2.0, f"an ingest call waited {max(durations):.2f} s"
            with session_factory(engine)() as session:
                assert session.scalar(select(func.min(TrafficReading.timestamp))) == now
                assert session.scalar(select(func.count()).select_from(TrafficReading)) == len(sensors) * len(stored)
        finally:
            engine.dispose()


@needs_postgres
def test_migration_to_the_partitioned_layout_and_back_keeps_the_rows() -> None:
    with postgres_database() as url:
        upgrade(url, "0012")
        engine = make_engine(url)
        try:
            with engine.begin() as connection:
                connection.execute(text("INSERT INTO sensors (sensor_id, latitude, longitude, created_at) "
                                        "VALUES ('a', 34, -118, now()), ('b', 34, -118, now())"))  # fmt: skip
                connection.execute(text(
                    "INSERT INTO traffic_readings (sensor_id, \"timestamp\", speed_mph, utc_offset_minutes) "
                    "SELECT s, timestamptz '2024-03-01 00:00+00' + g * interval '20 minutes', g % 70, 0 "
                    "FROM generate_series(0, 299) g, unnest(ARRAY['a', 'b']) s"))  # fmt: skip
                connection.execute(text(
                    "INSERT INTO predictions (created_at, model_name, model_version, inputs, latency_ms, cached, "
                    "record_id) SELECT timestamptz '2024-02-27 12:00+00' + g * interval '7 hours', 'eclo', 'v', "
                    "'{}', 1.0, false, 'r' || g FROM generate_series(0, 39) g"))  # fmt: skip

            def contents() -> tuple[list[tuple], list[tuple]]:
                with engine.connect() as connection:
                    return (
                        [tuple(r) for r in connection.execute(text(
                            'SELECT sensor_id, "timestamp", speed_mph FROM traffic_readings ORDER BY 1, 2'))],
                        [tuple(r) for r in connection.execute(text(
                            "SELECT id, created_at, record_id FROM predictions ORDER BY id"))],
                    )  # fmt: skip

            before = contents()
            upgrade(url)
            with engine.connect() as connection:
                assert is_partitioned(connection, "traffic_readings") and is_partitioned(connection, "predictions")
                reading_days = [p.day for p in partitions_of(connection, "traffic_readings")]
                latest = connection.execute(text('SELECT sensor_id, "timestamp" FROM latest_readings ORDER BY 1')).all()
            assert contents() == before
            first = datetime(2024, 3, 1, tzinfo=UTC)
            assert {first.date() + timedelta(days=i) for i in range(5)} <= set(reading_days)
            assert [tuple(r) for r in latest] == [("a", first + timedelta(minutes=20 * 299)),
                                                  ("b", first + timedelta(minutes=20 * 299))]  # fmt: skip
            with session_factory(engine)() as session:  # new records go on getting ids after the old ones
                insert_predictions(session, rows=[{"model_name": "eclo", "model_version": "v", "inputs": {},
                                                   "latency_ms": 1.0, "record_id": "new"}])  # fmt: skip
                session.commit()
                assert session.scalar(select(func.max(Prediction.id))) == max(r[0] for r in before[1]) + 1
            after_insert = contents()
            downgrade(url, "0012")
            with engine.connect() as connection:
                assert not is_partitioned(connection, "traffic_readings")
                assert not is_partitioned(connection, "predictions")
                assert connection.execute(text("SELECT to_regnamespace('partitions')")).scalar() is None
            assert contents() == after_insert
            upgrade(url)
            assert contents() == after_insert
        finally:
            engine.dispose()


def test_concurrent_calls_over_the_same_sensors_keep_the_newest(database_url: str) -> None:
    """Three writers storing every sensor at once, call after call, each in its own order of sensors: none fails
    (no deadlock over the newest readings' rows), and the newest of each sensor is the last time written."""
    engine = make_engine(database_url)
    sensors = [f"s{i:04d}" for i in range(2000)]
    writers_count, steps = 3, 8
    errors: list[BaseException] = []
    try:
        _sensors(engine, sensors)

        def write(writer: int) -> None:
            order = sensors[writer * 500 :] + sensors[: writer * 500]
            if writer % 2:
                order.reverse()
            try:
                for step in range(steps):
                    moment = DAY0 + timedelta(minutes=writers_count * step + writer)
                    _ingest(engine, [(s, moment, 40.0 + writer, None, None, 0) for s in order])
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                errors.append(exc)

        threads = [threading.Thread(target=write, args=(writer,)) for writer in range(writers_count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=180)
        assert not errors, errors
        last = DAY0 + timedelta(minutes=writers_count * (steps - 1) + writers_count - 1)
        with session_factory(engine)() as session:
            latest = readings.latest_per_sensor(session)
            assert len(latest) == len(sensors) and {r.timestamp for r in latest.values()} == {last}
            stored = session.scalar(select(func.count()).select_from(TrafficReading))
            assert stored == writers_count * steps * len(sensors)
    finally:
        engine.dispose()
