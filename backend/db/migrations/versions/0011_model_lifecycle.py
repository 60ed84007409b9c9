"""Model lifecycle: aliases (champion, challenger) and their history, training jobs, shadow scores

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 12:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIME = sa.DateTime(timezone=True)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "model_aliases",
        sa.Column("model_name", sa.String(length=64), nullable=False),
        sa.Column("alias", sa.String(length=16), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("model_name", "alias", name=op.f("pk_model_aliases")),
    )
    op.create_table(
        "model_alias_moves",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("model_name", sa.String(length=64), nullable=False),
        sa.Column("alias", sa.String(length=16), nullable=False),
        sa.Column("from_version", sa.String(length=64), nullable=True),
        sa.Column("to_version", sa.String(length=64), nullable=True),
        sa.Column("moved_by", sa.String(length=32), nullable=True),
        sa.Column("moved_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_alias_moves")),
    )
    op.create_index("ix_model_alias_moves_model_name_id", "model_alias_moves", ["model_name", "id"])
    op.create_table(
        "training_jobs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("model_name", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("stage", sa.String(length=64), nullable=True),
        sa.Column("fraction", sa.Float(), nullable=False),
        sa.Column("log", sa.JSON(), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("requested_by", sa.String(length=32), nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("started_at", TIME, nullable=True),
        sa.Column("finished_at", TIME, nullable=True),
        sa.Column("heartbeat_at", TIME, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_training_jobs")),
    )
    op.create_index("ix_training_jobs_model_name_created_at", "training_jobs", ["model_name", "created_at"])
    op.create_table(
        "shadow_scores",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("model_name", sa.String(length=64), nullable=False),
        sa.Column("champion_version", sa.String(length=64), nullable=False),
        sa.Column("challenger_version", sa.String(length=64), nullable=False),
        sa.Column("champion_value", sa.Float(), nullable=True),
        sa.Column("challenger_value", sa.Float(), nullable=True),
        sa.Column("champion_level", sa.String(length=32), nullable=True),
        sa.Column("challenger_level", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shadow_scores")),
    )
    op.create_index("ix_shadow_scores_model_name_created_at", "shadow_scores", ["model_name", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_shadow_scores_model_name_created_at", table_name="shadow_scores")
    op.drop_table("shadow_scores")
    op.drop_index("ix_training_jobs_model_name_created_at", table_name="training_jobs")
    op.drop_table("training_jobs")
    op.drop_index("ix_model_alias_moves_model_name_id", table_name="model_alias_moves")
    op.drop_table("model_alias_moves")
    op.drop_table("model_aliases")
