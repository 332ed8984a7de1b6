"""What the host's endpoints do: read and change tenants' feature settings (every change is
recorded with who made it), and read the log of archives deleted by retention."""

from dataclasses import dataclass

import sqlalchemy as sa
from litestar import Request
from litestar.di import NamedDependency

from recordings.catalog import (
    CatalogError,
    UnknownTenantError,
    all_recording_settings,
    set_recording_settings,
    settings_history,
)
from recordings.db.engine import session_scope
from recordings.db.models import ArchiveDeletion, TenantRecordingSettings
from recordings.retention import archive_deletions
from recordings_api.auth import principal_of
from recordings_api.errors import ApiError
from recordings_api.host.schemas import (
    ArchiveDeletionEntry,
    ArchiveDeletionPage,
    RecordingSettings,
    RecordingSettingsChange,
    RecordingSettingsHistory,
    RecordingSettingsHistoryEntry,
    RecordingSettingsList,
)
from recordings_api.state import ApiState
from recordings_api.wire import checked_tenant_id, iso_utc


def _body(row: TenantRecordingSettings) -> RecordingSettings:
    return RecordingSettings(
        tenant_id=row.tenant_id,
        enabled=row.enabled,
        retention_days=row.retention_days,
        legal_hold=row.legal_hold,
        updated_by=row.updated_by,
        updated_at=iso_utc(row.updated_at),
    )


def _deletion(row: ArchiveDeletion) -> ArchiveDeletionEntry:
    return ArchiveDeletionEntry(
        id=row.id,
        tenant_id=row.tenant_id,
        hour=iso_utc(row.hour),
        object_key=row.object_key,
        retention_days=row.retention_days,
        state=row.state,
        requested_at=iso_utc(row.requested_at),
        sha256=row.sha256,
        size_bytes=row.size_bytes,
        deleted_at=iso_utc(row.deleted_at) if row.deleted_at else None,
        run_id=row.run_id,
    )


def _unknown_tenant(tenant_id: str) -> ApiError:
    return ApiError(404, "unknown_tenant", f"tenant {tenant_id!r} does not exist")


@dataclass(frozen=True)
class HostService:
    """The host's endpoints' work, on behalf of `actor`."""

    engine: sa.Engine
    actor: str  # who is acting, for the settings' change history

    def all_settings(self) -> RecordingSettingsList:
        with session_scope(self.engine) as session:
            return RecordingSettingsList([_body(row) for row in all_recording_settings(session)])

    def settings(self, tenant_id: str) -> RecordingSettings:
        checked_tenant_id(tenant_id)
        with session_scope(self.engine) as session:
            row = session.get(TenantRecordingSettings, tenant_id)
            if row is None:
                raise ApiError(
                    404,
                    "unknown_tenant",
                    f"tenant {tenant_id!r} has no settings; PUT them to enable the feature",
                )
            return _body(row)

    def change(self, tenant_id: str, data: RecordingSettingsChange) -> RecordingSettings:
        checked_tenant_id(tenant_id)
        if data.enabled is None and data.retention_days is None and data.legal_hold is None:
            raise ApiError(
                400, "invalid_settings", "send at least one of enabled, retentionDays, legalHold"
            )
        try:
            with session_scope(self.engine) as session:
                row = set_recording_settings(
                    session,
                    tenant_id,
                    changed_by=self.actor,
                    enabled=data.enabled,
                    retention_days=data.retention_days,
                    legal_hold=data.legal_hold,
                )
                return _body(row)
        except UnknownTenantError:
            raise _unknown_tenant(tenant_id) from None
        except CatalogError as exc:
            raise ApiError(400, "invalid_settings", str(exc)) from None

    def history(self, tenant_id: str, limit: int) -> RecordingSettingsHistory:
        checked_tenant_id(tenant_id)
        try:
            with session_scope(self.engine) as session:
                changes = [
                    RecordingSettingsHistoryEntry(
                        changed_by=change.changed_by,
                        changed_at=iso_utc(change.changed_at),
                        enabled_after=change.enabled_after,
                        retention_days_after=change.retention_days_after,
                        enabled_before=change.enabled_before,
                        retention_days_before=change.retention_days_before,
                        legal_hold_before=change.legal_hold_before,
                        legal_hold_after=change.legal_hold_after,
                    )
                    for change in settings_history(session, tenant_id, limit)
                ]
        except UnknownTenantError:
            raise _unknown_tenant(tenant_id) from None
        return RecordingSettingsHistory(tenant_id=tenant_id, changes=changes)

    def deletions(
        self, tenant_id: str | None, limit: int, cursor: str | None
    ) -> ArchiveDeletionPage:
        if tenant_id:
            checked_tenant_id(tenant_id)
        if cursor is not None and (not cursor.isdigit() or int(cursor) < 1):
            raise ApiError(400, "invalid_cursor", "cursor must be a previous page's nextCursor")
        with session_scope(self.engine) as session:
            rows = archive_deletions(
                session,
                tenant_id=tenant_id or None,
                before_id=int(cursor) if cursor else None,
                limit=limit,
            )
            entries = [_deletion(row) for row in rows]
        more = len(entries) == limit
        return ArchiveDeletionPage(entries, str(entries[-1].id) if more else None)


def provide_host(request: Request, api: NamedDependency[ApiState]) -> HostService:
    return HostService(api.engine, actor=principal_of(request).subject or "host")
