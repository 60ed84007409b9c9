"""readings are keyed by (sensor, timestamp) with no surrogate id, and indexed by time with a BRIN on PostgreSQL:
each bulk insert maintains one B-tree instead of three

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("traffic_readings", schema=None) as batch_op:
        batch_op.drop_index("ix_traffic_readings_timestamp")
        batch_op.drop_constraint("uq_traffic_readings_sensor_id_timestamp", type_="unique")
        batch_op.drop_column("id")
        batch_op.create_primary_key("pk_traffic_readings", ["sensor_id", "timestamp"])
        batch_op.create_index("ix_traffic_readings_timestamp", ["timestamp"], unique=False, postgresql_using="brin")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint("pk_traffic_readings", "traffic_readings", type_="primary")
        op.execute("ALTER TABLE traffic_readings ADD COLUMN id BIGSERIAL")
        op.create_primary_key("pk_traffic_readings", "traffic_readings", ["id"])
        op.create_unique_constraint("uq_traffic_readings_sensor_id_timestamp", "traffic_readings",
                                    ["sensor_id", "timestamp"])  # fmt: skip
        op.drop_index("ix_traffic_readings_timestamp", table_name="traffic_readings")
        op.create_index("ix_traffic_readings_timestamp", "traffic_readings", ["timestamp"], unique=False)
        return
    with op.batch_alter_table("traffic_readings", schema=None, recreate="always") as batch_op:
        batch_op.drop_constraint("pk_traffic_readings", type_="primary")
        batch_op.add_column(sa.Column("id", sa.Integer(), nullable=False), insert_before="sensor_id")
        batch_op.create_primary_key("pk_traffic_readings", ["id"])
        batch_op.create_unique_constraint("uq_traffic_readings_sensor_id_timestamp", ["sensor_id", "timestamp"])
