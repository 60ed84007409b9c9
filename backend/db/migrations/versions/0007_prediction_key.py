"""The API key that asked for each single prediction

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 07:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("predictions", sa.Column("key_id", sa.String(length=32), nullable=True))
    op.create_index("ix_predictions_key_id_created_at", "predictions", ["key_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_predictions_key_id_created_at", table_name="predictions")
    op.drop_column("predictions", "key_id")
