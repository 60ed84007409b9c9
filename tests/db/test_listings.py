"""Keyset pages of the large tables (records, batches, readings) and their bounded totals, on SQLite and PostgreSQL:
walked after each page's last key, every row comes once and in order, ties in time included."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from backend.db.listings import Slice
from backend.db.models import BatchJob, Sensor
from backend.db.readings import insert_new, page_of_readings
from backend.db.records import insert_predictions, list_batch_jobs, list_predictions

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def _walk(listing: Callable[..., Slice[Any]], key: Callable[[Any], tuple], size: int, **filters: Any) -> list[Any]:
    """Every row, page after page, each page after the last key of the one before."""
    rows: list[Any] = []
    after = None
    while True:
        page = listing(size=size, after=after, **filters)
        assert len(page.items) <= size
        rows += page.items
        if not page.more:
            return rows
        after = key(page.items[-1])


def _records(db_session: Session, count: int) -> None:
    """Four records a second (ties in created_at), of two models."""
    rows = [{"created_at": NOW + timedelta(seconds=i // 4), "model_name": "eclo" if i % 3 else "congestion",
             "model_version": "v1", "inputs": {"i": i}, "latency_ms": 0.5, "request_id": f"r{i}",
             "record_id": f"{i:032x}"} for i in range(count)]  # fmt: skip
    insert_predictions(db_session, rows=rows)
    db_session.commit()


def test_records_walked_by_key_come_once_each_newest_first_with_ties(db_session: Session) -> None:
    _records(db_session, 50)
    expected = sorted(list_predictions(db_session, size=100).items, key=lambda p: (p.created_at, p.id), reverse=True)
    assert len(expected) == 50

    def listing(**arguments: Any) -> Slice[Any]:
        return list_predictions(db_session, **arguments)

    walked = _walk(listing, lambda p: (p.created_at, p.id), 3)
    assert [p.id for p in walked] == [p.id for p in expected]
    since = NOW + timedelta(seconds=2)
    congestion = _walk(listing, lambda p: (p.created_at, p.id), 2, model="congestion", since=since)
    assert [p.id for p in congestion] == [p.id for p in expected if p.model_name == "congestion"
                                          and p.created_at >= since]  # fmt: skip
    assert len(congestion) == 14


def test_a_total_is_counted_up_to_the_limit_and_says_whether_it_is_exact(db_session: Session) -> None:
    _records(db_session, 12)
    assert (list_predictions(db_session, size=5, count_limit=12).total_exact,
            list_predictions(db_session, size=5, count_limit=12).total) == (True, 12)  # fmt: skip
    bounded = list_predictions(db_session, size=5, count_limit=11)
    assert (bounded.total, bounded.total_exact, len(bounded.items), bounded.more) == (11, False, 5, True)
    eclo = list_predictions(db_session, size=5, count_limit=11, model="eclo")
    assert (eclo.total, eclo.total_exact) == (8, True)
    after = list_predictions(db_session, size=5, count_limit=11, after=(NOW + timedelta(seconds=1), 0))
    assert after.total == 11 and not after.total_exact  # every matching row, wherever the page starts
    assert [p.request_id for p in after.items] == ["r3", "r2", "r1", "r0"] and not after.more


def test_batch_jobs_walked_by_key_come_newest_first_then_by_id(db_session: Session) -> None:
    for i in range(17):
        db_session.add(BatchJob(id=f"{(i * 7) % 17:02d}", model_name="eclo", status="success" if i % 2 else "failure",
                                total=1, created_at=NOW + timedelta(minutes=i // 3)))  # fmt: skip
    db_session.commit()
    expected = sorted(list_batch_jobs(db_session, size=100).items, key=lambda j: j.id)
    expected.sort(key=lambda j: j.created_at, reverse=True)  # stable: by id within a time

    def listing(**arguments: Any) -> Slice[Any]:
        return list_batch_jobs(db_session, **arguments)

    walked = _walk(listing, lambda j: (j.created_at, j.id), 2)
    assert [j.id for j in walked] == [j.id for j in expected] and len(walked) == 17
    failed = _walk(listing, lambda j: (j.created_at, j.id), 4, status="failure")
    assert [j.id for j in failed] == [j.id for j in expected if j.status == "failure"]


def test_readings_walked_by_key_come_oldest_first_then_by_sensor(db_session: Session) -> None:
    sensors = ["b", "a", "c10", "c2"]
    for sensor in sensors:
        db_session.add(Sensor(sensor_id=sensor, latitude=34.0, longitude=-118.0))
    db_session.commit()
    insert_new(db_session, [(s, NOW + timedelta(minutes=5 * k), 50.0 + k, None, None, 0)
                            for k in range(6) for s in sensors])  # fmt: skip
    db_session.commit()
    expected = [(NOW + timedelta(minutes=5 * k), s) for k in range(6) for s in sorted(sensors)]

    def listing(**arguments: Any) -> Slice[Any]:
        return page_of_readings(db_session, start=None, end=None, **arguments)

    def key(r: Any) -> tuple:
        return (r.timestamp, r.sensor_id)

    assert [key(r) for r in _walk(listing, key, 5, sensor_id=None)] == expected
    one = _walk(listing, key, 2, sensor_id="c10")
    assert [key(r) for r in one] == [k for k in expected if k[1] == "c10"]
    window = page_of_readings(db_session, start=NOW + timedelta(minutes=5), end=NOW + timedelta(minutes=15),
                              sensor_id=None, size=3, after=(NOW + timedelta(minutes=5), "b"))  # fmt: skip
    assert [key(r) for r in window.items] == expected[6:9] and window.more and window.total == 8
