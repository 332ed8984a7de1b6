"""Queries and commands on the application database, shared by the CLI, Dagster and the API."""

from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from recordings.db.models import (
    DEFAULT_RETENTION_DAYS,
    MAX_RETENTION_DAYS,
    MIN_RETENTION_DAYS,
    AudioFile,
    Conversation,
    ConversationSession,
    Tenant,
    TenantRecordingSettings,
    TenantRecordingSettingsChange,
    utcnow,
)
from recordings.keys import hour_start, is_valid_tenant_id, validate_object_id, validate_tenant_id


class CatalogError(ValueError):
    """A request the catalog refuses; the message tells the user what to change."""


class UnknownTenantError(CatalogError):
    pass


@dataclass(frozen=True)
class SourceRecording:
    """A snapshot of one audio file reference, detached from any database session."""

    recording_id: str
    conversation_id: str
    session_id: str
    bucket: str
    object_key: str
    started_at: datetime
    duration_seconds: float
    format: str
    channels: int
    sample_rate: int | None
    size_bytes: int | None
    sha256: str | None = None
    """The source's SHA-256 as the platform registered it, where it provides one."""


def validate_retention_days(days: int) -> int:
    if not MIN_RETENTION_DAYS <= days <= MAX_RETENTION_DAYS:
        raise CatalogError(
            f"retention of {days} days is out of range: choose {MIN_RETENTION_DAYS} to "
            f"{MAX_RETENTION_DAYS} days"
        )
    return days


def ensure_tenant(session: Session, tenant_id: str, name: str | None = None) -> Tenant:
    """Return the tenant, creating it (feature disabled) if it does not exist."""
    validate_tenant_id(tenant_id)
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        tenant = Tenant(id=tenant_id, name=name or tenant_id)
        session.add(tenant)
        session.flush()
    elif name and tenant.name != name:
        tenant.name = name
    return tenant


def get_tenant(session: Session, tenant_id: str) -> Tenant:
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise UnknownTenantError(
            f"tenant {tenant_id!r} does not exist; create it with `recordings tenant set`"
        )
    return tenant


def set_recording_settings(
    session: Session,
    tenant_id: str,
    *,
    changed_by: str,
    enabled: bool | None = None,
    retention_days: int | None = None,
    legal_hold: bool | None = None,
) -> TenantRecordingSettings:
    """Change a tenant's feature settings (or its legal hold) and append the change to its
    history; omitted values keep theirs."""
    if not changed_by.strip():
        raise CatalogError("say who makes the change (changed_by must not be empty)")
    if retention_days is not None:
        validate_retention_days(retention_days)
    get_tenant(session, tenant_id)
    current = session.get(TenantRecordingSettings, tenant_id)
    before_enabled = current.enabled if current else None
    before_retention = current.retention_days if current else None
    before_hold = current.legal_hold if current else None
    now = utcnow()
    if current is None:
        current = TenantRecordingSettings(
            tenant_id=tenant_id,
            enabled=bool(enabled),
            retention_days=retention_days or DEFAULT_RETENTION_DAYS,
            legal_hold=bool(legal_hold),
            updated_by=changed_by,
            updated_at=now,
        )
        session.add(current)
    else:
        if enabled is not None:
            current.enabled = enabled
        if retention_days is not None:
            current.retention_days = retention_days
        if legal_hold is not None:
            current.legal_hold = legal_hold
        current.updated_by = changed_by
        current.updated_at = now
    session.add(
        TenantRecordingSettingsChange(
            tenant_id=tenant_id,
            changed_by=changed_by,
            changed_at=now,
            enabled_before=before_enabled,
            enabled_after=current.enabled,
            retention_days_before=before_retention,
            retention_days_after=current.retention_days,
            legal_hold_before=before_hold,
            legal_hold_after=current.legal_hold,
        )
    )
    session.flush()
    return current


def settings_history(
    session: Session, tenant_id: str, limit: int = 100
) -> list[TenantRecordingSettingsChange]:
    """The tenant's settings changes, newest first (raises UnknownTenantError)."""
    get_tenant(session, tenant_id)
    return list(
        session.scalars(
            sa.select(TenantRecordingSettingsChange)
            .where(TenantRecordingSettingsChange.tenant_id == tenant_id)
            .order_by(TenantRecordingSettingsChange.id.desc())
            .limit(limit)
        )
    )


def all_recording_settings(session: Session) -> list[TenantRecordingSettings]:
    """Every tenant's settings, by tenant id."""
    return list(
        session.scalars(
            sa.select(TenantRecordingSettings).order_by(TenantRecordingSettings.tenant_id)
        )
    )


def tenant_ids(session: Session) -> list[str]:
    return list(session.scalars(sa.select(Tenant.id).order_by(Tenant.id)))


def enabled_tenant_ids(session: Session) -> list[str]:
    """Tenants whose daily recordings feature is on, in a stable order (valid ids only: see
    `enabled_tenant_ids_and_unusable`)."""
    return enabled_tenant_ids_and_unusable(session)[0]


def enabled_tenant_ids_and_unusable(session: Session) -> tuple[list[str], list[str]]:
    """Enabled tenants with a valid id, and enabled tenants whose id is not one.

    A row written behind our back with an id that is not a tenant id (a path, odd Unicode, a
    `|`) could not be a partition key and must not stop every other tenant's night: it is
    skipped, and the second list names it for the operator."""
    query = (
        sa.select(TenantRecordingSettings.tenant_id)
        .where(TenantRecordingSettings.enabled.is_(True))
        .order_by(TenantRecordingSettings.tenant_id)
    )
    usable: list[str] = []
    unusable: list[str] = []
    for tenant_id in session.scalars(query):
        (usable if is_valid_tenant_id(tenant_id) else unusable).append(tenant_id)
    return usable, unusable


def is_enabled(session: Session, tenant_id: str) -> bool:
    settings = session.get(TenantRecordingSettings, tenant_id)
    return bool(settings and settings.enabled)


def retention_days_if_enabled(session: Session, tenant_id: str) -> int | None:
    """The tenant's retention in days while its feature is enabled; None when it is disabled
    or the tenant has no settings (what a listing needs: whether to answer, and which hours
    have expired)."""
    settings = session.get(TenantRecordingSettings, tenant_id)
    return settings.retention_days if settings and settings.enabled else None


def _source_recording(row: AudioFile) -> SourceRecording:
    return SourceRecording(
        recording_id=row.id,
        conversation_id=row.conversation_id,
        session_id=row.session_id,
        bucket=row.bucket,
        object_key=row.object_key,
        started_at=row.started_at,
        duration_seconds=row.duration_seconds,
        format=row.format,
        channels=row.channels,
        sample_rate=row.sample_rate,
        size_bytes=row.size_bytes,
        sha256=row.sha256,
    )


def recordings_in_hour(session: Session, tenant_id: str, hour: datetime) -> list[SourceRecording]:
    """The tenant's recordings that started in `[hour, hour + 1h)`, in archive order.

    One range scan of `ix_audio_files_tenant_started`.
    """
    start = hour_start(hour)
    query = (
        sa.select(AudioFile)
        .where(
            AudioFile.tenant_id == tenant_id,
            AudioFile.started_at >= start,
            AudioFile.started_at < start + timedelta(hours=1),
        )
        .order_by(AudioFile.started_at, AudioFile.id)
    )
    return [_source_recording(row) for row in session.scalars(query)]


TENANTS_PER_QUERY = 500
"""Tenants per `IN (...)` list: well under SQLite's and PostgreSQL's parameter limits."""


def _tenant_chunks(tenant_ids_: Iterable[str]) -> Iterator[list[str]]:
    ordered = sorted(set(tenant_ids_))
    for index in range(0, len(ordered), TENANTS_PER_QUERY):
        yield ordered[index : index + TENANTS_PER_QUERY]


def recordings_in_hours(
    session: Session, tenant_hours: Collection[tuple[str, datetime]]
) -> dict[tuple[str, datetime], list[SourceRecording]]:
    """The recordings of many tenant-hours at once, each hour's in archive order (as
    `recordings_in_hour`), every requested hour present (empty when it has none).

    One range scan of `ix_audio_files_tenant_started` per `TENANTS_PER_QUERY` tenants over the
    span of the requested hours; a run of a thousand tenant-hours costs a few queries, not a
    thousand.
    """
    wanted = {(tenant_id, hour_start(hour)) for tenant_id, hour in tenant_hours}
    found: dict[tuple[str, datetime], list[SourceRecording]] = {key: [] for key in wanted}
    if not wanted:
        return found
    start = min(hour for _, hour in wanted)
    end = max(hour for _, hour in wanted) + timedelta(hours=1)
    for chunk in _tenant_chunks(tenant_id for tenant_id, _ in wanted):
        query = (
            sa.select(AudioFile)
            .where(
                AudioFile.tenant_id.in_(chunk),
                AudioFile.started_at >= start,
                AudioFile.started_at < end,
            )
            .order_by(AudioFile.tenant_id, AudioFile.started_at, AudioFile.id)
        )
        for row in session.scalars(query):
            key = (row.tenant_id, hour_start(row.started_at))
            if key in found:
                found[key].append(_source_recording(row))
    return found


def enabled_among(session: Session, tenant_ids_: Iterable[str]) -> set[str]:
    """Which of these tenants have their daily recordings feature on (one query per
    `TENANTS_PER_QUERY` tenants)."""
    enabled: set[str] = set()
    for chunk in _tenant_chunks(tenant_ids_):
        enabled.update(
            session.scalars(
                sa.select(TenantRecordingSettings.tenant_id).where(
                    TenantRecordingSettings.tenant_id.in_(chunk),
                    TenantRecordingSettings.enabled.is_(True),
                )
            )
        )
    return enabled


def expected_audio_seconds(
    session: Session, tenant_ids_: Iterable[str], start: datetime, end: datetime
) -> dict[str, float]:
    """Seconds of audio registered per tenant for recordings started in `[start, end)`: the
    work a tenant-day is expected to be (tenants with none are absent)."""
    seconds: dict[str, float] = {}
    for chunk in _tenant_chunks(tenant_ids_):
        rows = session.execute(
            sa.select(AudioFile.tenant_id, sa.func.sum(AudioFile.duration_seconds))
            .where(
                AudioFile.tenant_id.in_(chunk),
                AudioFile.started_at >= start,
                AudioFile.started_at < end,
            )
            .group_by(AudioFile.tenant_id)
        )
        seconds.update({tenant_id: float(total or 0.0) for tenant_id, total in rows})
    return seconds


def register_recording(
    session: Session,
    *,
    tenant_id: str,
    conversation_id: str,
    session_id: str,
    recording_id: str,
    bucket: str,
    object_key: str,
    started_at: datetime,
    duration_seconds: float,
    audio_format: str,
    channels: int,
    sample_rate: int | None = None,
    size_bytes: int | None = None,
    sha256: str | None = None,
) -> AudioFile:
    """Register an uploaded source recording, creating its conversation and session if needed.

    This is what the conversation platform does when a recording is stored.
    """
    if started_at.tzinfo is None:
        raise CatalogError("started_at must carry a time zone (use UTC, e.g. 2025-12-12T13:05Z)")
    validate_object_id("conversation", conversation_id)
    validate_object_id("session", session_id)
    validate_object_id("recording", recording_id)
    tenant = get_tenant(session, tenant_id)
    conversation = session.get(Conversation, conversation_id)
    if conversation is None:
        conversation = Conversation(
            id=conversation_id, tenant_id=tenant.id, started_at=started_at, ended_at=None
        )
        session.add(conversation)
    elif conversation.tenant_id != tenant.id:
        raise CatalogError(
            f"conversation {conversation_id!r} belongs to another tenant; use a new conversation id"
        )
    end = started_at + timedelta(seconds=duration_seconds)
    conversation.started_at = min(conversation.started_at, started_at)
    conversation.ended_at = max(conversation.ended_at or end, end)
    conv_session = session.get(ConversationSession, session_id)
    if conv_session is None:
        conv_session = ConversationSession(
            id=session_id,
            conversation_id=conversation_id,
            tenant_id=tenant.id,
            started_at=started_at,
        )
        session.add(conv_session)
    elif conv_session.conversation_id != conversation_id:
        raise CatalogError(
            f"session {session_id!r} belongs to conversation {conv_session.conversation_id!r}"
        )
    if session.get(AudioFile, recording_id) is not None:
        raise CatalogError(f"recording {recording_id!r} is already registered")
    audio = AudioFile(
        id=recording_id,
        tenant_id=tenant.id,
        conversation_id=conversation_id,
        session_id=session_id,
        bucket=bucket,
        object_key=object_key,
        started_at=started_at,
        duration_seconds=duration_seconds,
        format=audio_format,
        channels=channels,
        sample_rate=sample_rate,
        size_bytes=size_bytes,
        sha256=sha256,
    )
    session.add(audio)
    session.flush()
    return audio


def count_recordings(session: Session, tenant_ids_: Sequence[str] | None = None) -> int:
    query = sa.select(sa.func.count()).select_from(AudioFile)
    if tenant_ids_ is not None:
        query = query.where(AudioFile.tenant_id.in_(tenant_ids_))
    return int(session.scalar(query) or 0)


@dataclass(frozen=True)
class RegisteredRecording:
    tenant_id: str
    started_at: datetime
    registered_at: datetime


def recordings_registered_since(
    session: Session, since: datetime, limit: int = 10_000
) -> list[RegisteredRecording]:
    """Recordings registered after `since`, oldest registration first (an index range)."""
    rows = session.execute(
        sa.select(AudioFile.tenant_id, AudioFile.started_at, AudioFile.registered_at)
        .where(AudioFile.registered_at > since)
        .order_by(AudioFile.registered_at)
        .limit(limit)
    )
    return [RegisteredRecording(t, started, registered) for t, started, registered in rows]
