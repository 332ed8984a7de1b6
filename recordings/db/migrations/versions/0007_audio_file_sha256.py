"""audio files: the source's SHA-256 as registered

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 12:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A nullable column is added in place on both SQLite and PostgreSQL: no table rewrite.
    op.add_column("audio_files", sa.Column("sha256", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audio_files") as batch:
        batch.drop_column("sha256")
