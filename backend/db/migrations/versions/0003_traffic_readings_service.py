"""sensors gain a free-flow speed; readings keep the UTC offset they came in, are indexed by time, and name
their sensor without a per-row foreign-key trigger (the service checks it, set-based, in the bulk statement)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 22:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sensors", schema=None) as batch_op:
        batch_op.add_column(sa.Column("free_flow_mph", sa.Float(), nullable=True))
    with op.batch_alter_table("traffic_readings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("utc_offset_minutes", sa.SmallInteger(), nullable=False, server_default="0"))
        batch_op.create_index("ix_traffic_readings_timestamp", ["timestamp"], unique=False)
        batch_op.drop_constraint("fk_traffic_readings_sensor_id_sensors", type_="foreignkey")


def downgrade() -> None:
    with op.batch_alter_table("traffic_readings", schema=None) as batch_op:
        batch_op.create_foreign_key(
            "fk_traffic_readings_sensor_id_sensors", "sensors", ["sensor_id"], ["sensor_id"], ondelete="CASCADE"
        )
        batch_op.drop_index("ix_traffic_readings_timestamp")
        batch_op.drop_column("utc_offset_minutes")
    with op.batch_alter_table("sensors", schema=None) as batch_op:
        batch_op.drop_column("free_flow_mph")
