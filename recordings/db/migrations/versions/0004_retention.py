"""retention and late recordings: legal hold, its history, the evidence of deleted archives,
and an index on when recordings were registered

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 01:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("audio_files", schema=None) as batch_op:
        batch_op.create_index("ix_audio_files_registered", ["registered_at"])
    with op.batch_alter_table("tenant_recording_settings", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("legal_hold", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    with op.batch_alter_table("tenant_recording_settings_changes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("legal_hold_before", sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column("legal_hold_after", sa.Boolean(), nullable=True))
    op.create_table(
        "archive_deletions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("object_key", sa.String(length=1024), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("retention_days", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.CheckConstraint(
            "state IN ('deleting', 'deleted', 'abandoned')",
            name=op.f("ck_archive_deletions_archive_deletion_state"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_archive_deletions")),
    )
    with op.batch_alter_table("archive_deletions", schema=None) as batch_op:
        batch_op.create_index("ix_archive_deletions_tenant_hour", ["tenant_id", "hour"])


def downgrade() -> None:
    with op.batch_alter_table("archive_deletions", schema=None) as batch_op:
        batch_op.drop_index("ix_archive_deletions_tenant_hour")
    op.drop_table("archive_deletions")
    with op.batch_alter_table("tenant_recording_settings_changes", schema=None) as batch_op:
        batch_op.drop_column("legal_hold_after")
        batch_op.drop_column("legal_hold_before")
    with op.batch_alter_table("tenant_recording_settings", schema=None) as batch_op:
        batch_op.drop_column("legal_hold")
    with op.batch_alter_table("audio_files", schema=None) as batch_op:
        batch_op.drop_index("ix_audio_files_registered")
