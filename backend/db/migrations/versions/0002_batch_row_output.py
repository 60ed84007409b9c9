"""batch rows hold the model's own output (any model kind) instead of ECLO columns

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 20:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

rows = sa.table(
    "batch_rows",
    sa.column("id", sa.Integer),
    sa.column("eclo", sa.Float),
    sa.column("risk_level", sa.String),
    sa.column("model_version", sa.String),
    sa.column("output", sa.JSON),
)


def upgrade() -> None:
    with op.batch_alter_table("batch_rows", schema=None) as batch_op:
        batch_op.add_column(sa.Column("output", sa.JSON(), nullable=True))
    connection = op.get_bind()
    scored = connection.execute(
        sa.select(rows.c.id, rows.c.eclo, rows.c.risk_level, rows.c.model_version).where(rows.c.eclo.is_not(None))
    ).all()
    for row_id, eclo, risk, version in scored:
        output = {"eclo": eclo, "risk_level": risk, "model_version": version}
        connection.execute(sa.update(rows).where(rows.c.id == row_id).values(output=output))
    with op.batch_alter_table("batch_rows", schema=None) as batch_op:
        batch_op.drop_column("eclo")
        batch_op.drop_column("risk_level")


def downgrade() -> None:
    with op.batch_alter_table("batch_rows", schema=None) as batch_op:
        batch_op.add_column(sa.Column("eclo", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("risk_level", sa.String(length=16), nullable=True))
    connection = op.get_bind()
    for row_id, output in connection.execute(sa.select(rows.c.id, rows.c.output).where(rows.c.output.is_not(None))):
        connection.execute(
            sa.update(rows)
            .where(rows.c.id == row_id)
            .values(eclo=output.get("eclo"), risk_level=output.get("risk_level"))
        )
    with op.batch_alter_table("batch_rows", schema=None) as batch_op:
        batch_op.drop_column("output")
