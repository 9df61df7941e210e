"""batch predictions: a job kind, and what such a job scores

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 11:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=24), nullable=False, server_default="training")
        )
        batch_op.create_index(batch_op.f("ix_job_kind"), ["kind"], unique=False)
    op.create_table(
        "batch_prediction",
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("model_id", sa.String(length=32), nullable=False),
        sa.Column("model_ref", sa.String(length=255), nullable=False),
        sa.Column("output_format", sa.String(length=16), nullable=False),
        sa.Column("passthrough", sa.JSON(), nullable=False),
        sa.Column("array", sa.String(length=64), nullable=True),
        sa.Column("chunk_rows", sa.Integer(), nullable=False),
        sa.Column("rows_total", sa.Integer(), nullable=False),
        sa.Column("rows_done", sa.Integer(), nullable=False),
        sa.Column("rows_failed", sa.Integer(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=True),
        sa.Column("result_key", sa.String(length=255), nullable=True),
        sa.Column("result_bytes", sa.BigInteger(), nullable=False),
        sa.Column("errors_key", sa.String(length=255), nullable=True),
        sa.Column("errors_bytes", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["job.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("job_id"),
    )
    with op.batch_alter_table("batch_prediction", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_batch_prediction_model_id"), ["model_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("batch_prediction", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_batch_prediction_model_id"))
    op.drop_table("batch_prediction")
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_job_kind"))
        batch_op.drop_column("kind")
