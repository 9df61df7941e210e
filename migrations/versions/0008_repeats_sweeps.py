"""repeated experiments and sweeps

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sweep",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=False),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("metric", sa.String(length=255), nullable=False),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("sweep", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sweep_owner"), ["owner"], unique=False)
        batch_op.create_index(batch_op.f("ix_sweep_created_at"), ["created_at"], unique=False)

    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.add_column(sa.Column("repeats", sa.Integer(), nullable=False, server_default="1"))
        batch_op.add_column(sa.Column("parent_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("sweep_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("sweep_trial", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("sweep_params", sa.JSON(), nullable=True))
        batch_op.create_index(batch_op.f("ix_job_parent_id"), ["parent_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_job_sweep_id"), ["sweep_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_job_parent_id_job"), "job", ["parent_id"], ["id"], ondelete="CASCADE"
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_job_sweep_id_sweep"), "sweep", ["sweep_id"], ["id"], ondelete="CASCADE"
        )

    op.create_table(
        "job_repeat",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("run_job_id", sa.String(length=32), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("epochs", sa.Integer(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=True),
        sa.Column("test_metrics", sa.JSON(), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["job.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["run_job_id"], ["job.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("job_id", "index"),
    )
    with op.batch_alter_table("job_repeat", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_job_repeat_job_id"), ["job_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_job_repeat_run_job_id"), ["run_job_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("job_repeat", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_job_repeat_run_job_id"))
        batch_op.drop_index(batch_op.f("ix_job_repeat_job_id"))
    op.drop_table("job_repeat")

    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_job_sweep_id_sweep"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("fk_job_parent_id_job"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_job_sweep_id"))
        batch_op.drop_index(batch_op.f("ix_job_parent_id"))
        batch_op.drop_column("sweep_params")
        batch_op.drop_column("sweep_trial")
        batch_op.drop_column("sweep_id")
        batch_op.drop_column("parent_id")
        batch_op.drop_column("repeats")

    with op.batch_alter_table("sweep", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sweep_created_at"))
        batch_op.drop_index(batch_op.f("ix_sweep_owner"))
    op.drop_table("sweep")
