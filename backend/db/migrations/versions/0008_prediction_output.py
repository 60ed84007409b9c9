"""Single predictions of any model kind: `eclo` and `risk_level` may be empty, `output` holds another kind's answer

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 08:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("output", sa.JSON(), nullable=True))
        batch_op.alter_column("eclo", existing_type=sa.Float(), nullable=True)
        batch_op.alter_column("risk_level", existing_type=sa.String(length=16), nullable=True)


def downgrade() -> None:
    """The records of other kinds than ECLO have no place in the older schema: they are deleted."""
    op.execute("DELETE FROM predictions WHERE eclo IS NULL OR risk_level IS NULL")
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.alter_column("risk_level", existing_type=sa.String(length=16), nullable=False)
        batch_op.alter_column("eclo", existing_type=sa.Float(), nullable=False)
        batch_op.drop_column("output")
