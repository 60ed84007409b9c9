"""API keys (hashed), the key that submitted each batch, and an id per prediction record so that a write retried
after a lost commit acknowledgement lands once

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 01:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("scopes", sa.String(length=100), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("revoked_at", TIME, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
    )
    op.add_column("batch_jobs", sa.Column("owner", sa.String(length=32), nullable=True))
    op.add_column("predictions", sa.Column("record_id", sa.String(length=32), nullable=True))
    op.create_index("ix_predictions_record_id", "predictions", ["record_id"], unique=True)


def downgrade() -> None:
    # Plain ALTER TABLE on SQLite too (3.35+): a batch-mode copy of batch_jobs would cascade-delete batch_rows.
    op.drop_column("batch_jobs", "owner")
    op.drop_index("ix_predictions_record_id", table_name="predictions")
    op.drop_column("predictions", "record_id")
    op.drop_table("api_keys")
