from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from sqlalchemy import event, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.db.models import BatchRow, Prediction, Sensor, TrafficReading
from backend.db.partitions import days_of, ensure_days, ensure_partitions
from backend.db.readings import page_of_readings
from backend.db.records import (
    get_batch_job,
    insert_batch_job_if_absent,
    insert_predictions,
    iter_predictions,
    list_batch_jobs,
    list_predictions,
    save_batch_rows,
    upsert_batch_job,
)

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def _prediction(i: int, model: str) -> dict:
    return {
        "created_at": NOW + timedelta(minutes=i), "model_name": model, "model_version": f"v-{model}",
        "inputs": {"weather": "맑음", "i": i}, "eclo": 3.0 + i / 100, "risk_level": "low", "latency_ms": 0.5,
        "cached": i % 2 == 0, "request_id": f"r{i}",
    }  # fmt: skip


def test_a_retried_prediction_write_lands_once(db_session: Session) -> None:
    """The spill file retries a write whose commit went unanswered (it may have landed): the record id keeps it once."""
    rows = [{**_prediction(i, "eclo"), "record_id": f"{i:032x}"} for i in range(3)]
    insert_predictions(db_session, rows=rows[:2])
    db_session.commit()
    insert_predictions(db_session, rows=rows)
    db_session.commit()
    assert sorted(p.request_id for p in list_predictions(db_session, size=10).items) == ["r0", "r1", "r2"]


def test_prediction_pages_and_filters(db_session: Session) -> None:
    insert_predictions(db_session, rows=[_prediction(i, "eclo" if i < 30 else "other") for i in range(45)])
    db_session.commit()
    first = list_predictions(db_session, size=20)
    assert first.total == 45 and first.total_exact and len(first.items) == 20 and first.more
    assert first.items[0].request_id == "r44"  # newest first
    last = list_predictions(db_session, size=20, offset=40)
    assert last.total == 45 and [p.request_id for p in last.items] == [f"r{i}" for i in range(4, -1, -1)]
    assert not last.more
    eclo = list_predictions(db_session, size=100, model="eclo")
    assert eclo.total == 30 and {p.model_version for p in eclo.items} == {"v-eclo"}
    recent = list_predictions(db_session, size=100, since=NOW + timedelta(minutes=40))
    assert recent.total == 5 and recent.items[0].inputs == {"weather": "맑음", "i": 44}


def test_predictions_by_key_beside_records_spilled_before_key_ids(db_session: Session) -> None:
    """A record spilled by an older version has no key_id: it is written beside newer ones in one executemany."""
    rows = [{**_prediction(i, "eclo"), "key_id": "a1b2c3d4e5f6"} for i in range(3)]
    insert_predictions(db_session, rows=[rows[0], _prediction(9, "eclo"), *rows[1:]])
    db_session.commit()
    mine = list_predictions(db_session, size=10, key_id="a1b2c3d4e5f6")
    assert mine.total == 3 and [p.request_id for p in mine.items] == ["r2", "r1", "r0"]
    assert [p.key_id for p in list_predictions(db_session, size=10).items].count(None) == 1


def test_records_of_two_model_kinds_are_written_in_one_executemany(db_session: Session) -> None:
    """The recorder flushes ECLO records (no `output`) and congestion ones (no `eclo`, `risk_level`) together."""
    forecast = {"sensor_id": "773869", "forecasts": [{"horizon_minutes": 15, "speed_mph": 61.2, "level": "free"}]}
    congestion = {**_prediction(1, "congestion"), "output": forecast}
    del congestion["eclo"], congestion["risk_level"]
    insert_predictions(db_session, rows=[_prediction(0, "eclo"), congestion, _prediction(2, "eclo")])
    db_session.commit()
    (record,) = list_predictions(db_session, size=10, model="congestion").items
    assert record.output == forecast and record.eclo is None and record.risk_level is None
    eclo = list_predictions(db_session, size=10, model="eclo")
    assert eclo.total == 2 and [p.eclo for p in eclo.items] == [3.02, 3.0] and {p.output for p in eclo.items} == {None}
    exported = list(iter_predictions(db_session, chunk=2))
    assert [p.model_name for p in exported] == ["eclo", "congestion", "eclo"]  # oldest first
    assert [p.request_id for p in iter_predictions(db_session, since=NOW, until=NOW + timedelta(minutes=2))] == [
        "r0", "r1",
    ]  # fmt: skip


def test_a_flush_of_records_is_one_multi_row_insert(db_session: Session) -> None:
    """Not a DBAPI executemany, which SQLite steps once a row (taking and giving back the GIL each time)."""
    statements: list[str] = []
    engine = db_session.get_bind()
    listener = lambda *args: statements.append(args[2])  # noqa: E731 - (conn, cursor, statement, ...)
    event.listen(engine, "before_cursor_execute", listener)
    try:
        insert_predictions(db_session, rows=[{**_prediction(i, "eclo"), "record_id": f"{i:032x}"}
                                                  for i in range(300)])  # fmt: skip
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    db_session.commit()
    inserts = [s for s in statements if s.lstrip().upper().startswith("INSERT")]
    placeholders = max(inserts[0].count("?"), inserts[0].count("%s"))  # SQLite's, psycopg2's
    assert len(inserts) == 1 and placeholders >= 300 * 10, inserts[0][:300]  # each row's own VALUES
    assert list_predictions(db_session, size=1).total == 300


def test_a_flushed_record_is_stored_as_an_orm_write_stores_it(db_session: Session) -> None:
    """The flush writes its own SQL: each stored value (a time given in another zone, JSON, a flag, a missing
    field) must read the same, raw, as the ORM's write of the same record."""
    seoul = timezone(timedelta(hours=9))
    record = {**_prediction(1, "eclo"), "created_at": datetime(2026, 11, 1, 21, 0, 0, 123456, tzinfo=seoul),
              "cached": True, "record_id": "a" * 32}  # fmt: skip
    insert_predictions(db_session, rows=[record])
    db_session.add(Prediction(**{**record, "record_id": "b" * 32, "output": None, "key_id": None}))
    db_session.commit()
    columns = "created_at, inputs, output, eclo, risk_level, cached, key_id, latency_ms"
    flushed, orm = db_session.execute(text(f"SELECT {columns} FROM predictions ORDER BY record_id")).all()
    assert tuple(flushed) == tuple(orm)
    (stored,) = list_predictions(db_session, size=1, since=datetime(2026, 11, 1, 12, 0, tzinfo=UTC)).items
    assert stored.created_at == datetime(2026, 11, 1, 12, 0, 0, 123456, tzinfo=UTC) and stored.cached is True


def test_batch_job_upsert_and_rows_are_written_once(db_session: Session) -> None:
    insert_batch_job_if_absent(db_session, batch_id="b1", model_name="eclo", status="pending", total=2)
    upsert_batch_job(db_session, batch_id="b1", model_name="eclo", status="processing", total=2)
    insert_batch_job_if_absent(db_session, batch_id="b1", model_name="eclo", status="pending", total=2)
    rows = [
        {"row_index": 0, "model_version": "v1", "output": {"eclo": 3.2, "risk_level": "low", "model_version": "v1"}},
        {"row_index": 1, "error": "invalid input in 1 field: weather", "details": [{"field": "weather"}]},
    ]
    save_batch_rows(db_session, batch_id="b1", rows=rows)
    save_batch_rows(db_session, batch_id="b1", rows=[{**rows[0], "output": {"eclo": 99.0}}])
    upsert_batch_job(db_session, batch_id="b1", status="partial", done=2)
    db_session.commit()
    job = get_batch_job(db_session, batch_id="b1")
    assert job is not None and job.status == "partial" and job.done == 2
    assert [(r.row_index, (r.output or {}).get("eclo"), r.error is None) for r in job.rows] == [
        (0, 3.2, True),
        (1, None, False),
    ]
    jobs = list_batch_jobs(db_session, size=10, status="partial")
    assert jobs.total == 1 and jobs.items[0].id == "b1"
    assert list_batch_jobs(db_session, size=10, status="pending").total == 0
    assert db_session.scalar(select(BatchRow.details).where(BatchRow.row_index == 1)) == [{"field": "weather"}]


def test_a_reading_is_unique_per_sensor_and_time(db_session: Session) -> None:
    db_session.add(Sensor(sensor_id="773869", latitude=34.15497, longitude=-118.31829))
    ensure_days(db_session.connection(), "traffic_readings", days_of([NOW]))  # (the ingest statement makes them)
    db_session.add(TrafficReading(sensor_id="773869", timestamp=NOW, speed_mph=61.5, volume=900, occupancy=8.0))
    db_session.commit()
    db_session.add(TrafficReading(sensor_id="773869", timestamp=NOW, speed_mph=40.0))
    with pytest.raises(IntegrityError):
        db_session.commit()


def test_times_in_any_zone_are_stored_and_compared_as_utc(db_session: Session) -> None:
    """SQLite keeps no zone: a bound time in -08:00 must compare as its UTC instant, not as its wall clock."""
    la = timezone(timedelta(hours=-8))
    db_session.add(Sensor(sensor_id="s", latitude=34.0, longitude=-118.0))
    ensure_partitions(db_session.connection(), "traffic_readings", date(2012, 3, 8), date(2012, 3, 8))
    for minutes in (0, 60, 120):
        moment = datetime(2012, 3, 7, 22, 0, tzinfo=la) + timedelta(minutes=minutes)
        db_session.add(TrafficReading(sensor_id="s", timestamp=moment, speed_mph=50.0 + minutes))
    db_session.commit()
    found = page_of_readings(db_session, start=datetime(2012, 3, 7, 23, 0, tzinfo=la), end=None, sensor_id="s",
                             size=10)  # fmt: skip
    assert found.total == 2 and [r.speed_mph for r in found.items] == [110.0, 170.0]
    assert found.items[0].timestamp == datetime(2012, 3, 8, 7, 0, tzinfo=UTC)
