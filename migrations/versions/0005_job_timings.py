"""a job's phase timings (import, data load, build, fit, epoch writes, evaluate, save)

Revision ID: 0005
Revises: 0002
Create Date: 2026-11-25 22:45:00.000000

History pagination needs no index of its own: the (job_id, epoch) unique constraint of
epoch_metric is one.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.add_column(sa.Column("timings", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_column("timings")
