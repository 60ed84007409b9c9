"""Migrations on SQLite always and on PostgreSQL when it answers: up, down, up; and they match the models."""

import json

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from backend.db.migrate import downgrade, upgrade
from backend.db.models import Base
from backend.db.session import make_engine

TABLES = {
    "predictions", "batch_jobs", "batch_rows", "sensors", "traffic_readings", "datasets", "dataset_jobs",
    "share_tokens", "api_keys", "conversations", "conversation_messages", "model_aliases", "model_alias_moves",
    "training_jobs", "shadow_scores", "reading_rollups", "reading_rollup_marks", "latest_readings",
}  # fmt: skip


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade(empty_database_url: str) -> None:
    upgrade(empty_database_url)
    assert _tables(empty_database_url) == TABLES
    downgrade(empty_database_url)
    assert _tables(empty_database_url) == set()
    upgrade(empty_database_url)
    assert _tables(empty_database_url) == TABLES


def test_models_and_migrations_agree(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


def test_batch_rows_of_the_first_schema_keep_their_answers(empty_database_url: str) -> None:
    upgrade(empty_database_url, "0001")
    engine = make_engine(empty_database_url)
    try:
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO batch_jobs (id, model_name, status, total, done, created_at) "
                                    "VALUES ('b', 'eclo', 'success', 2, 2, CURRENT_TIMESTAMP)"))  # fmt: skip
            connection.execute(text("INSERT INTO batch_rows (batch_id, row_index, eclo, risk_level, model_version) "
                                    "VALUES ('b', 0, 3.5, 'low', 'v1')"))  # fmt: skip
            connection.execute(text("INSERT INTO batch_rows (batch_id, row_index, error) VALUES ('b', 1, 'bad')"))
        upgrade(empty_database_url)
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT row_index, output FROM batch_rows ORDER BY row_index")).all()
        outputs = [json.loads(o) if isinstance(o, str) else o for _, o in rows]
        assert outputs == [{"eclo": 3.5, "risk_level": "low", "model_version": "v1"}, None]
        downgrade(empty_database_url, "0001")
        with engine.connect() as connection:
            back = connection.execute(text("SELECT eclo, risk_level FROM batch_rows ORDER BY row_index")).all()
        assert [tuple(r) for r in back] == [(3.5, "low"), (None, None)]
    finally:
        engine.dispose()


def test_readings_keep_their_values_across_the_natural_key(empty_database_url: str) -> None:
    upgrade(empty_database_url, "0003")
    engine = make_engine(empty_database_url)
    values = "SELECT sensor_id, speed_mph FROM traffic_readings ORDER BY sensor_id"
    try:
        with engine.begin() as connection:
            insert = text("INSERT INTO traffic_readings (sensor_id, timestamp, speed_mph) "
                          "VALUES (:s, '2020-01-01 08:00:00+00:00', :v)")  # fmt: skip
            for sensor, speed in (("a", 50.0), ("b", 61.5)):
                connection.execute(insert, {"s": sensor, "v": speed})
        upgrade(empty_database_url)
        assert "id" not in {c["name"] for c in inspect(engine).get_columns("traffic_readings")}
        key = inspect(engine).get_pk_constraint("traffic_readings")["constrained_columns"]
        assert key == ["sensor_id", "timestamp"]
        with engine.connect() as connection:
            assert connection.execute(text(values)).all() == [("a", 50.0), ("b", 61.5)]
        downgrade(empty_database_url, "0003")
        with engine.connect() as connection:
            assert connection.execute(text(values)).all() == [("a", 50.0), ("b", 61.5)]
            ids = connection.execute(text("SELECT id FROM traffic_readings")).scalars().all()
        assert sorted(ids) == [1, 2]
    finally:
        engine.dispose()


def test_records_of_other_kinds_come_with_0008_and_go_with_its_downgrade(empty_database_url: str) -> None:
    upgrade(empty_database_url, "0007")
    engine = make_engine(empty_database_url)
    insert = text("INSERT INTO predictions (created_at, model_name, model_version, inputs, eclo, risk_level, "
                  "latency_ms, cached) VALUES (CURRENT_TIMESTAMP, :m, 'v1', '{}', :e, :r, 0.4, false)")  # fmt: skip
    kinds = "SELECT model_name, eclo, risk_level FROM predictions ORDER BY id"
    try:
        with engine.begin() as connection:
            connection.execute(insert, {"m": "eclo", "e": 3.5, "r": "low"})
        upgrade(empty_database_url)
        with engine.begin() as connection:
            connection.execute(insert, {"m": "congestion", "e": None, "r": None})
            assert connection.execute(text(kinds)).all() == [("eclo", 3.5, "low"), ("congestion", None, None)]
        downgrade(empty_database_url, "0007")
        with engine.connect() as connection:
            assert connection.execute(text(kinds)).all() == [("eclo", 3.5, "low")]
        assert "output" not in {c["name"] for c in inspect(engine).get_columns("predictions")}
    finally:
        engine.dispose()


def test_datasets_keep_their_jobs_and_share_links_across_0009(empty_database_url: str) -> None:
    """0009 rebuilds `datasets` on SQLite: the rows pointing at it must survive (foreign keys off while migrating)."""
    upgrade(empty_database_url, "0008")
    engine = make_engine(empty_database_url)
    counts = ("SELECT (SELECT count(*) FROM datasets), (SELECT count(*) FROM dataset_jobs), "
              "(SELECT count(*) FROM share_tokens)")  # fmt: skip
    try:
        with engine.begin() as connection:
            for statement in (
                "INSERT INTO datasets (id, name, filename, model_name, layout, encoding, columns, rows, "
                "valid_rows, problems, has_outcomes, size_bytes, checksum, uploaded_at) VALUES ('d1', 'n', "
                "'f.csv', 'eclo', 'dacon', 'utf-8', '[]', 1, 1, 0, false, 1, 'c', CURRENT_TIMESTAMP)",
                "INSERT INTO dataset_jobs (id, dataset_id, model_name, status, total, done, chunk_rows, "
                "created_at) VALUES ('j1', 'd1', 'eclo', 'success', 1, 1, 1, CURRENT_TIMESTAMP)",
                "INSERT INTO share_tokens (token_hash, dataset_id, created_at, expires_at) "
                "VALUES ('h', 'd1', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
            ):
                connection.execute(text(statement))
        upgrade(empty_database_url)
        with engine.connect() as connection:
            assert connection.execute(text(counts)).one() == (1, 1, 1)
            assert connection.execute(text("SELECT kind FROM datasets")).scalar_one() == "eclo"
        downgrade(empty_database_url, "0008")
        with engine.connect() as connection:
            assert connection.execute(text(counts)).one() == (1, 1, 1)
    finally:
        engine.dispose()
