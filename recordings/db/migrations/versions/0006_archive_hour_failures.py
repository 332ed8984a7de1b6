"""archive hour failures: the latest failed attempt per tenant-hour

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 02:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "archive_hour_failures",
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("cause", sa.String(length=2000), nullable=False),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "hour", name=op.f("pk_archive_hour_failures")),
    )


def downgrade() -> None:
    op.drop_table("archive_hour_failures")
