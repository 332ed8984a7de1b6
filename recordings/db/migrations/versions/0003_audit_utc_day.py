"""audit: the UTC day a links request asked for

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 00:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("download_audit", schema=None) as batch_op:
        batch_op.add_column(sa.Column("utc_day", sa.Date(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("download_audit", schema=None) as batch_op:
        batch_op.drop_column("utc_day")
