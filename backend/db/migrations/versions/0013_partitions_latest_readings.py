"""Each sensor's newest reading in a table of its own; on PostgreSQL, readings and records partitioned by day

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 16:00:00

The partitioned layout (PostgreSQL only): each table is renamed aside, made again partitioned by range of its time
column with the same columns, keys and indexes (a key must hold the partition column: the records' primary key
becomes (id, created_at) and their record-id index (record_id, created_at), on SQLite too), given a partition for
every day it holds and the next days, filled, and the old one dropped. Downgrade does the reverse.
"""

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa
from alembic import op

from backend.db.partitions import SCHEMA, ensure_days

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIME = sa.DateTime(timezone=True)
AHEAD_DAYS = 2

# table: (partition column, primary key, indexes as (name, columns, unique, method))
LAYOUT = {
    "traffic_readings": (
        "timestamp",
        ("sensor_id", "timestamp"),
        [("ix_traffic_readings_timestamp", ("timestamp",), False, "brin")],
    ),
    "predictions": (
        "created_at",
        ("id", "created_at"),
        [
            ("ix_predictions_created_at", ("created_at",), False, "btree"),
            ("ix_predictions_key_id_created_at", ("key_id", "created_at"), False, "btree"),
            ("ix_predictions_record_id", ("record_id", "created_at"), True, "btree"),
            ("ix_predictions_model_name_created_at", ("model_name", "created_at"), False, "btree"),
        ],
    ),
}
UNPARTITIONED_KEYS = {"traffic_readings": ("sensor_id", "timestamp"), "predictions": ("id",)}
UNPARTITIONED_RECORD_ID = ("record_id",)


def _columns(names: Sequence[str]) -> str:
    return ", ".join(f'"{n}"' for n in names)


def _indexes(table: str, keys: Sequence[str], indexes: list[tuple[str, tuple[str, ...], bool, str]]) -> None:
    op.execute(f'ALTER TABLE "{table}" ADD CONSTRAINT "pk_{table}" PRIMARY KEY ({_columns(keys)})')
    for name, columns, unique, method in indexes:
        op.execute(
            f'CREATE {"UNIQUE " if unique else ""}INDEX "{name}" ON "{table}" USING {method} ({_columns(columns)})'
        )


def _set_aside(table: str, suffix: str) -> str:
    """Rename the table and its key and indexes out of the way; returns the new name."""
    aside = f"{table}_{suffix}"
    op.execute(f'ALTER TABLE "{table}" RENAME TO "{aside}"')
    op.execute(f'ALTER TABLE "{aside}" RENAME CONSTRAINT "pk_{table}" TO "pk_{aside}"')
    for name, *_ in LAYOUT[table][2]:
        op.execute(f'ALTER INDEX "{name}" RENAME TO "{name}_{suffix}"')
    return aside


def _own_sequence(table: str) -> None:
    if table == "predictions":
        op.execute('ALTER SEQUENCE "predictions_id_seq" OWNED BY "predictions"."id"')


def _partition(table: str) -> None:
    column, keys, indexes = LAYOUT[table]
    aside = _set_aside(table, "unpartitioned")
    op.execute(f'CREATE TABLE "{table}" (LIKE "{aside}" INCLUDING DEFAULTS) PARTITION BY RANGE ("{column}")')
    _indexes(table, keys, indexes)
    _own_sequence(table)
    bind = op.get_bind()
    days: set[date] = {
        row[0]
        for row in bind.execute(sa.text(f'SELECT DISTINCT ("{column}" AT TIME ZONE \'UTC\')::date FROM "{aside}"'))
    }
    today = datetime.now(UTC).date()
    days |= {today + timedelta(days=i) for i in range(-1, AHEAD_DAYS + 1)}
    ensure_days(bind, table, days)
    op.execute(f'INSERT INTO "{table}" SELECT * FROM "{aside}"')
    op.execute(f'DROP TABLE "{aside}"')


def _unpartition(table: str) -> None:
    _, _, indexes = LAYOUT[table]
    aside = _set_aside(table, "partitioned")
    op.execute(f'CREATE TABLE "{table}" (LIKE "{aside}" INCLUDING DEFAULTS)')
    plain = [(n, UNPARTITIONED_RECORD_ID if n == "ix_predictions_record_id" else c, u, m) for n, c, u, m in indexes]
    _indexes(table, UNPARTITIONED_KEYS[table], plain)
    _own_sequence(table)
    op.execute(f'INSERT INTO "{table}" SELECT * FROM "{aside}"')
    op.execute(f'DROP TABLE "{aside}" CASCADE')


def upgrade() -> None:
    op.create_table(
        "latest_readings",
        sa.Column("sensor_id", sa.String(length=64), nullable=False),
        sa.Column("timestamp", TIME, nullable=False),
        sa.Column("speed_mph", sa.Float(), nullable=False),
        sa.Column("volume", sa.Float(), nullable=True),
        sa.Column("occupancy", sa.Float(), nullable=True),
        sa.Column("utc_offset_minutes", sa.SmallInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("sensor_id", name=op.f("pk_latest_readings")),
    )
    columns = 'sensor_id, "timestamp", speed_mph, volume, occupancy, utc_offset_minutes'
    if op.get_bind().dialect.name == "postgresql":
        # Every stored call updates a row a sensor: room on each page keeps the updates on it (HOT, no index entry).
        op.execute("ALTER TABLE latest_readings SET (fillfactor = 40)")
        op.execute(f"INSERT INTO latest_readings ({columns}) SELECT DISTINCT ON (sensor_id) {columns} "
                   'FROM traffic_readings ORDER BY sensor_id, "timestamp" DESC')  # fmt: skip
        op.execute(f'CREATE SCHEMA IF NOT EXISTS "{SCHEMA}"')
        for table in LAYOUT:
            _partition(table)
        return
    op.execute(f"INSERT INTO latest_readings ({columns}) SELECT r.sensor_id, r.timestamp, r.speed_mph, r.volume, "
               "r.occupancy, r.utc_offset_minutes FROM traffic_readings r JOIN (SELECT sensor_id, max(timestamp) AS "
               "newest FROM traffic_readings GROUP BY sensor_id) n ON n.sensor_id = r.sensor_id "
               "AND n.newest = r.timestamp")  # fmt: skip
    with op.batch_alter_table("predictions") as batch:
        batch.drop_index("ix_predictions_record_id")
        batch.create_index("ix_predictions_record_id", ["record_id", "created_at"], unique=True)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in LAYOUT:
            _unpartition(table)
        op.execute(f'DROP SCHEMA IF EXISTS "{SCHEMA}"')
    else:
        with op.batch_alter_table("predictions") as batch:
            batch.drop_index("ix_predictions_record_id")
            batch.create_index("ix_predictions_record_id", ["record_id"], unique=True)
    op.drop_table("latest_readings")
