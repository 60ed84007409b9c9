"""Datasets of any table: `kind` is "table" or the model's name; a table has no model

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 06:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(length=64), nullable=False, server_default="eclo"))
        batch_op.alter_column("model_name", existing_type=sa.String(length=64), nullable=True)
        batch_op.alter_column("layout", existing_type=sa.String(length=16), nullable=True)
    op.execute("UPDATE datasets SET kind = model_name")


def downgrade() -> None:
    """Tables have no place in the older schema: they are deleted (their files stay until the folder is cleaned)."""
    op.execute("DELETE FROM share_tokens WHERE dataset_id IN (SELECT id FROM datasets WHERE kind = 'table')")
    op.execute("DELETE FROM datasets WHERE kind = 'table'")
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.alter_column("layout", existing_type=sa.String(length=16), nullable=False)
        batch_op.alter_column("model_name", existing_type=sa.String(length=64), nullable=False)
        batch_op.drop_column("kind")
