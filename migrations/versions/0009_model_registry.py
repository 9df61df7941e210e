"""registered models: versions, aliases and their moves

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 07:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("model", schema=None) as batch_op:
        batch_op.add_column(sa.Column("trained_with", sa.JSON(), nullable=True))
    op.create_table(
        "registered_model",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("owner", "name"),
    )
    with op.batch_alter_table("registered_model", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_registered_model_owner"), ["owner"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_registered_model_created_at"), ["created_at"], unique=False
        )
    op.create_table(
        "model_version",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("registered_model_id", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.String(length=32), nullable=False),
        sa.Column("lineage", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["model_id"], ["model.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["registered_model_id"], ["registered_model.id"], ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("registered_model_id", "version"),
    )
    with op.batch_alter_table("model_version", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_model_version_model_id"), ["model_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_model_version_registered_model_id"),
            ["registered_model_id"],
            unique=False,
        )
    op.create_table(
        "model_alias",
        sa.Column("registered_model_id", sa.String(length=32), nullable=False),
        sa.Column("alias", sa.String(length=64), nullable=False),
        sa.Column("version_id", sa.String(length=32), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["registered_model_id"], ["registered_model.id"], ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["version_id"], ["model_version.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("registered_model_id", "alias"),
    )
    with op.batch_alter_table("model_alias", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_model_alias_version_id"), ["version_id"], unique=False)
    op.create_table(
        "alias_move",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("registered_model_id", sa.String(length=32), nullable=False),
        sa.Column("alias", sa.String(length=64), nullable=False),
        sa.Column("from_version", sa.Integer(), nullable=True),
        sa.Column("to_version", sa.Integer(), nullable=True),
        sa.Column("moved_by", sa.String(length=255), nullable=False),
        sa.Column("moved_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["registered_model_id"], ["registered_model.id"], ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("alias_move", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_alias_move_registered_model_id"), ["registered_model_id"], unique=False
        )


def downgrade() -> None:
    op.drop_table("alias_move")
    op.drop_table("model_alias")
    op.drop_table("model_version")
    op.drop_table("registered_model")
    with op.batch_alter_table("model", schema=None) as batch_op:
        batch_op.drop_column("trained_with")
