"""The application database: tenants, their feature settings, and audio file references.

The conversation platform owns conversations, sessions and audio references; we model the part
of its schema the archive needs. Times are stored in UTC (see `UTCDateTime`). The one hot query
of the nightly job — one tenant's recordings that started in one hour — is served by the
`ix_audio_files_tenant_started` index, whatever the table's size.
"""

from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

MIN_RETENTION_DAYS = 1
MAX_RETENTION_DAYS = 7
DEFAULT_RETENTION_DAYS = 7


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python.

    PostgreSQL stores `timestamptz`; SQLite has no time zones, so values are stored as naive UTC
    and given back as aware UTC. Naive datetimes are refused on the way in: a naive value is
    ambiguous, and an ambiguous time in a compliance archive is a bug.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} refused: pass a timezone-aware datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = sa.MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(sa.String(63), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    recording_settings: Mapped["TenantRecordingSettings | None"] = relationship(
        back_populates="tenant", uselist=False, cascade="all, delete-orphan", passive_deletes=True
    )


class TenantRecordingSettings(Base):
    """The host's per-tenant switch for this feature, and its retention.

    Retention is bounded 1..7 days by a CHECK constraint as well as in code, so no path (a
    migration, a manual UPDATE, a bug) can store a value the retention job would misread.
    """

    __tablename__ = "tenant_recording_settings"
    __table_args__ = (
        sa.CheckConstraint(
            f"retention_days BETWEEN {MIN_RETENTION_DAYS} AND {MAX_RETENTION_DAYS}",
            name="retention_days_range",
        ),
    )

    tenant_id: Mapped[str] = mapped_column(
        sa.ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    enabled: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    retention_days: Mapped[int] = mapped_column(sa.Integer, default=DEFAULT_RETENTION_DAYS)
    # A legal hold suspends deletion by retention; nothing else changes while it is set.
    legal_hold: Mapped[bool] = mapped_column(sa.Boolean, default=False, server_default=sa.false())
    updated_by: Mapped[str] = mapped_column(sa.String(200))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    tenant: Mapped[Tenant] = relationship(back_populates="recording_settings")


class TenantRecordingSettingsChange(Base):
    """Append-only history of settings changes: who changed what, when, from which value."""

    __tablename__ = "tenant_recording_settings_changes"
    __table_args__ = (sa.Index("ix_settings_changes_tenant_changed", "tenant_id", "changed_at"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id", ondelete="CASCADE"))
    changed_by: Mapped[str] = mapped_column(sa.String(200))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    enabled_before: Mapped[bool | None] = mapped_column(sa.Boolean)
    enabled_after: Mapped[bool] = mapped_column(sa.Boolean)
    retention_days_before: Mapped[int | None] = mapped_column(sa.Integer)
    retention_days_after: Mapped[int] = mapped_column(sa.Integer)
    legal_hold_before: Mapped[bool | None] = mapped_column(sa.Boolean)
    legal_hold_after: Mapped[bool | None] = mapped_column(sa.Boolean)  # None: before holds existed


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (sa.Index("ix_conversations_tenant_started", "tenant_id", "started_at"),)

    id: Mapped[str] = mapped_column(sa.String(128), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id", ondelete="CASCADE"))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    channel: Mapped[str | None] = mapped_column(sa.String(50))

    sessions: Mapped[list["ConversationSession"]] = relationship(back_populates="conversation")


class ConversationSession(Base):
    """One leg of a conversation (a transfer or a reconnect starts a new session)."""

    __tablename__ = "conversation_sessions"

    id: Mapped[str] = mapped_column(sa.String(128), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(
        sa.ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id", ondelete="CASCADE"))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())

    conversation: Mapped[Conversation] = relationship(back_populates="sessions")
    audio_files: Mapped[list["AudioFile"]] = relationship(back_populates="session")


class AudioFile(Base):
    """A reference to one source recording in object storage.

    `tenant_id` and `conversation_id` are denormalised from the session so that the nightly
    query is one index range scan: `(tenant_id, started_at)` for `[hour, hour + 1h)`.
    """

    __tablename__ = "audio_files"
    __table_args__ = (
        sa.Index("ix_audio_files_tenant_started", "tenant_id", "started_at"),
        # The late-recordings sensor reads what was registered since its last look.
        sa.Index("ix_audio_files_registered", "registered_at"),
        sa.UniqueConstraint("bucket", "object_key", name="uq_audio_files_object"),
        sa.CheckConstraint("channels >= 1", name="channels_positive"),
        sa.CheckConstraint("duration_seconds >= 0", name="duration_not_negative"),
    )

    id: Mapped[str] = mapped_column(sa.String(128), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id", ondelete="CASCADE"))
    conversation_id: Mapped[str] = mapped_column(
        sa.ForeignKey("conversations.id", ondelete="CASCADE")
    )
    session_id: Mapped[str] = mapped_column(
        sa.ForeignKey("conversation_sessions.id", ondelete="CASCADE"), index=True
    )
    bucket: Mapped[str] = mapped_column(sa.String(63))
    object_key: Mapped[str] = mapped_column(sa.String(1024))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    duration_seconds: Mapped[float] = mapped_column(sa.Float)
    format: Mapped[str] = mapped_column(sa.String(32))
    sample_rate: Mapped[int | None] = mapped_column(sa.Integer)
    channels: Mapped[int] = mapped_column(sa.Integer)
    size_bytes: Mapped[int | None] = mapped_column(sa.BigInteger)
    sha256: Mapped[str | None] = mapped_column(sa.String(64))
    """Lowercase hex SHA-256 of the source object, where the platform registers one; the
    archive compares it (and ``size_bytes``) with what it reads (``source_changed``)."""
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    session: Mapped[ConversationSession] = relationship(back_populates="audio_files")


class DownloadAuditEntry(Base):
    """Every links request and every download attempt, granted or not: the accountability log.

    Granted downloads (`outcome == "granted"`) are also what the per-tenant rate limit counts,
    so the limit and the evidence can never disagree.
    """

    __tablename__ = "download_audit"
    __table_args__ = (
        sa.Index("ix_download_audit_tenant_occurred", "tenant_id", "occurred_at"),
        sa.Index(
            "ix_download_audit_tenant_outcome_occurred", "tenant_id", "outcome", "occurred_at"
        ),
    )

    id: Mapped[int] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    action: Mapped[str] = mapped_column(sa.String(32))  # list_links | download
    tenant_id: Mapped[str | None] = mapped_column(sa.String(63))
    client_subject: Mapped[str | None] = mapped_column(sa.String(200))
    utc_day: Mapped[date | None] = mapped_column(sa.Date)  # the day a links request asked for
    hour: Mapped[datetime | None] = mapped_column(UTCDateTime())
    object_key: Mapped[str | None] = mapped_column(sa.String(1024))
    outcome: Mapped[str] = mapped_column(sa.String(40))
    status_code: Mapped[int] = mapped_column(sa.Integer)
    client_address: Mapped[str | None] = mapped_column(sa.String(64))
    user_agent: Mapped[str | None] = mapped_column(sa.String(400))


class ArchiveDeletion(Base):
    """Evidence of an archive deleted by retention: which, when, under which retention value.

    Written in two steps around the S3 delete (`deleting`, then `deleted`), so that a crash
    between them leaves a row the next cleanup reconciles, never a deletion without a record.
    """

    __tablename__ = "archive_deletions"
    __table_args__ = (
        sa.Index("ix_archive_deletions_tenant_hour", "tenant_id", "hour"),
        sa.CheckConstraint(
            "state IN ('deleting', 'deleted', 'abandoned')", name="archive_deletion_state"
        ),
    )

    id: Mapped[int] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    tenant_id: Mapped[str] = mapped_column(sa.String(63))
    hour: Mapped[datetime] = mapped_column(UTCDateTime())
    object_key: Mapped[str] = mapped_column(sa.String(1024))
    sha256: Mapped[str | None] = mapped_column(sa.String(64))
    size_bytes: Mapped[int | None] = mapped_column(sa.BigInteger)
    retention_days: Mapped[int] = mapped_column(sa.Integer)
    state: Mapped[str] = mapped_column(sa.String(16))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    run_id: Mapped[str | None] = mapped_column(sa.String(64))  # the Dagster run that deleted it


class ArchiveHourLease(Base):
    """Which run is building a tenant-hour's archive right now (one row per hour being built).

    Two runs of the same hour (a backfill overlapping the nightly run) would otherwise both
    upload to the same key, and the object left at the key could be one run's while the latest
    Dagster materialization (the evidence the API and the checks read) is the other's. The
    lease makes them take turns: the holder keeps it from selecting the recordings until its
    materialization is recorded, refreshing `renewed_at` while it works (see
    `recordings/leases.py`).
    """

    __tablename__ = "archive_hour_leases"

    tenant_id: Mapped[str] = mapped_column(sa.String(63), primary_key=True)
    hour: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    holder: Mapped[str] = mapped_column(sa.String(64))  # the Dagster run id
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime())
    renewed_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ArchiveHourFailure(Base):
    """The latest failed attempt at a tenant-hour's archive: which run, why, and when.

    The API tells a tenant whether a missing hour is `failed` (the run that last tried it failed
    and no retry is coming) or `pending`. Dagster could say so from one planned-materialization
    event per partition per run, but writing 24 such events per tenant-day made submitting a
    night of 10,000 tenants take most of an hour; a run now plans its partitions in one event,
    and failures are recorded here instead, in bulk, only when there are some (by the run for
    the hours it could not archive, and by the archive-failures sensor for runs that died).
    A later archive of the hour supersedes the row: the API reads materializations first.
    """

    __tablename__ = "archive_hour_failures"

    tenant_id: Mapped[str] = mapped_column(sa.String(63), primary_key=True)
    hour: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    run_id: Mapped[str] = mapped_column(sa.String(64))
    cause: Mapped[str] = mapped_column(sa.String(2000))
    failed_at: Mapped[datetime] = mapped_column(UTCDateTime())


WEBHOOK_EVENT_STATES = ("pending", "delivered", "failed", "cancelled")


class WebhookEndpoint(Base):
    """A tenant's day-ready webhook: where events are posted and the salt of its signing secret.

    The secret itself is never stored: it is derived from `secret_salt` and the service's
    webhook key (`recordings.webhooks.signing.derive_secret`), so a copy of the database alone
    cannot forge an event. Rotating draws a new salt; the previous one keeps signing (as a second
    signature) until `previous_secret_expires_at`, so a receiver can switch without a gap.
    """

    __tablename__ = "webhook_endpoints"

    tenant_id: Mapped[str] = mapped_column(
        sa.ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    url: Mapped[str] = mapped_column(sa.String(2048))
    secret_salt: Mapped[bytes] = mapped_column(sa.LargeBinary(64))
    previous_secret_salt: Mapped[bytes | None] = mapped_column(sa.LargeBinary(64))
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str] = mapped_column(sa.String(200))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_by: Mapped[str] = mapped_column(sa.String(200))
    secret_rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class WebhookEvent(Base):
    """One event for a tenant's webhook (the outbox): its body, as signed and posted on every
    attempt, and where its delivery stands.

    `id` is the Standard Webhooks `webhook-id`, the same on every retry so receivers can drop
    duplicates. `dedup_key` makes the producers idempotent: a day is announced ready once, an
    hour's re-archive once per materialization, a day's expiry once.
    """

    __tablename__ = "webhook_events"
    __table_args__ = (
        sa.Index("ix_webhook_events_tenant_created", "tenant_id", "created_at"),
        sa.Index("ix_webhook_events_status_next", "status", "next_attempt_at"),
        sa.CheckConstraint(
            "status IN ('pending', 'delivered', 'failed', 'cancelled')",
            name="webhook_event_status",
        ),
    )

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id", ondelete="CASCADE"))
    event_type: Mapped[str] = mapped_column(sa.String(40))
    dedup_key: Mapped[str | None] = mapped_column(sa.String(200), unique=True)
    body: Mapped[str] = mapped_column(sa.Text)  # the JSON posted, byte for byte
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    status: Mapped[str] = mapped_column(sa.String(16), default="pending")
    attempt_count: Mapped[int] = mapped_column(sa.Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    attempts: Mapped[list["WebhookAttempt"]] = relationship(
        back_populates="event",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="WebhookAttempt.id",
    )


class WebhookAttempt(Base):
    """One delivery attempt of an event: when, to which URL and address, how it ended and how
    long it took. Readable by the tenant and the host."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (sa.Index("ix_webhook_attempts_event", "event_id", "id"),)

    id: Mapped[int] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    event_id: Mapped[str] = mapped_column(sa.ForeignKey("webhook_events.id", ondelete="CASCADE"))
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    url: Mapped[str] = mapped_column(sa.String(2048))
    address: Mapped[str | None] = mapped_column(sa.String(64))  # the IP connected to
    outcome: Mapped[str] = mapped_column(sa.String(40))  # delivered | an error code
    status_code: Mapped[int | None] = mapped_column(sa.Integer)
    duration_ms: Mapped[int] = mapped_column(sa.Integer)
    detail: Mapped[str] = mapped_column(sa.String(500), default="")

    event: Mapped[WebhookEvent] = relationship(back_populates="attempts")
