"""download audit

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 23:23:58.467121
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "download_audit",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=63), nullable=True),
        sa.Column("client_subject", sa.String(length=200), nullable=True),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=True),
        sa.Column("object_key", sa.String(length=1024), nullable=True),
        sa.Column("outcome", sa.String(length=40), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("client_address", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=400), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_download_audit")),
    )
    with op.batch_alter_table("download_audit", schema=None) as batch_op:
        batch_op.create_index(
            "ix_download_audit_tenant_occurred", ["tenant_id", "occurred_at"], unique=False
        )
        batch_op.create_index(
            "ix_download_audit_tenant_outcome_occurred",
            ["tenant_id", "outcome", "occurred_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("download_audit", schema=None) as batch_op:
        batch_op.drop_index("ix_download_audit_tenant_outcome_occurred")
        batch_op.drop_index("ix_download_audit_tenant_occurred")

    op.drop_table("download_audit")
