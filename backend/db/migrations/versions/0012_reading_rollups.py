"""Hourly roll-ups of traffic readings, and the marks of hours to roll up

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-08 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIME = sa.DateTime(timezone=True)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# Every hour that already has readings is marked, so the first roll-up takes in the existing history.
_MARK_HISTORY = {
    "postgresql": """INSERT INTO reading_rollup_marks (hour)
        SELECT DISTINCT date_trunc('hour', "timestamp" AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
        FROM traffic_readings""",
    "sqlite": """INSERT INTO reading_rollup_marks (hour)
        SELECT DISTINCT substr("timestamp", 1, 13) || ':00:00.000000' FROM traffic_readings""",
}


def upgrade() -> None:
    op.create_table(
        "reading_rollups",
        sa.Column("sensor_id", sa.String(length=64), nullable=False),
        sa.Column("hour", TIME, nullable=False),
        sa.Column("utc_offset_minutes", sa.SmallInteger(), nullable=False),
        sa.Column("readings", sa.Integer(), nullable=False),
        sa.Column("missing", sa.Integer(), nullable=False),
        sa.Column("speed_sum", sa.Float(), nullable=False),
        sa.Column("speed_min", sa.Float(), nullable=True),
        sa.Column("speed_max", sa.Float(), nullable=True),
        sa.Column("quarters", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("sensor_id", "hour", "utc_offset_minutes", name=op.f("pk_reading_rollups")),
    )
    op.create_table(
        "reading_rollup_marks",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("hour", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reading_rollup_marks")),
    )
    op.create_index("ix_reading_rollup_marks_hour", "reading_rollup_marks", ["hour"])
    op.execute(_MARK_HISTORY[op.get_bind().dialect.name])


def downgrade() -> None:
    op.drop_index("ix_reading_rollup_marks_hour", table_name="reading_rollup_marks")
    op.drop_table("reading_rollup_marks")
    op.drop_table("reading_rollups")
