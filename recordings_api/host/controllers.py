"""The host operator reads and sets tenants' feature settings; every change is recorded."""

from typing import Annotated

from litestar import Controller, Request, get, put
from litestar.di import NamedDependency
from litestar.params import JSONBody, PathParameter, QueryParameter

from recordings.catalog import (
    CatalogError,
    UnknownTenantError,
    all_recording_settings,
    set_recording_settings,
    settings_history,
)
from recordings.db.engine import session_scope
from recordings.db.models import TenantRecordingSettings
from recordings.retention import archive_deletions
from recordings_api.auth import authenticate, requires_permission
from recordings_api.errors import ApiError, error_responses
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

TENANT_SETTINGS = "/tenants/{tenant_id:str}/daily-conversation-audio-recordings/settings"
TenantId = Annotated[str, PathParameter(description="The tenant's id", max_length=63)]
HOST_ONLY = "Needs a bearer token with the host permission."


def _body(row: TenantRecordingSettings) -> RecordingSettings:
    return RecordingSettings(
        tenant_id=row.tenant_id,
        enabled=row.enabled,
        retention_days=row.retention_days,
        legal_hold=row.legal_hold,
        updated_by=row.updated_by,
        updated_at=iso_utc(row.updated_at),
    )


def _unknown_tenant(tenant_id: str) -> ApiError:
    return ApiError(404, "unknown_tenant", f"tenant {tenant_id!r} does not exist")


def _host(request: Request, api: ApiState) -> str:
    """Authenticate a host token; returns who is acting, for the change history."""
    principal = authenticate(request, api.settings.tokens)
    requires_permission(principal, api.settings.tokens.host_permission)
    return principal.subject or "host"


class HostSettingsController(Controller):
    path = "/api/v1/host"
    tags = ("host",)
    security = [{"BearerToken": []}]  # noqa: RUF012 (Litestar's declared attribute type)

    @get(
        "/daily-conversation-audio-recordings/settings",
        operation_id="listTenantRecordingSettings",
        summary="Every tenant's feature settings",
        description=HOST_ONLY,
        responses=error_responses(401, 403),
        sync_to_thread=True,
    )
    def list_all(self, request: Request, api: NamedDependency[ApiState]) -> RecordingSettingsList:
        _host(request, api)
        with session_scope(api.engine) as session:
            return RecordingSettingsList([_body(row) for row in all_recording_settings(session)])

    @get(
        TENANT_SETTINGS,
        operation_id="getTenantRecordingSettings",
        summary="A tenant's feature settings",
        description=HOST_ONLY,
        responses=error_responses(400, 401, 403, 404),
        sync_to_thread=True,
    )
    def read(
        self, request: Request, api: NamedDependency[ApiState], tenant_id: TenantId
    ) -> RecordingSettings:
        _host(request, api)
        checked_tenant_id(tenant_id)
        with session_scope(api.engine) as session:
            row = session.get(TenantRecordingSettings, tenant_id)
            if row is None:
                raise ApiError(
                    404,
                    "unknown_tenant",
                    f"tenant {tenant_id!r} has no settings; PUT them to enable the feature",
                )
            return _body(row)

    @put(
        TENANT_SETTINGS,
        operation_id="setTenantRecordingSettings",
        summary="Enable or disable the feature, set the retention (1-7 days), set a legal hold",
        description=f"{HOST_ONLY} Each change is recorded with who made it, when, and the "
        "values before and after. Disabling stops generation and downloads at once; a legal "
        "hold suspends deletion by retention until it is lifted.",
        responses=error_responses(400, 401, 403, 404),
        sync_to_thread=True,
    )
    def change(
        self,
        request: Request,
        api: NamedDependency[ApiState],
        tenant_id: TenantId,
        data: JSONBody[RecordingSettingsChange],
    ) -> RecordingSettings:
        actor = _host(request, api)
        checked_tenant_id(tenant_id)
        if data.enabled is None and data.retention_days is None and data.legal_hold is None:
            raise ApiError(
                400, "invalid_settings", "send at least one of enabled, retentionDays, legalHold"
            )
        try:
            with session_scope(api.engine) as session:
                row = set_recording_settings(
                    session,
                    tenant_id,
                    changed_by=actor,
                    enabled=data.enabled,
                    retention_days=data.retention_days,
                    legal_hold=data.legal_hold,
                )
                return _body(row)
        except UnknownTenantError:
            raise _unknown_tenant(tenant_id) from None
        except CatalogError as exc:
            raise ApiError(400, "invalid_settings", str(exc)) from None

    @get(
        f"{TENANT_SETTINGS}/changes",
        operation_id="listTenantRecordingSettingsChanges",
        summary="A tenant's settings history: who changed what, when",
        description=HOST_ONLY,
        responses=error_responses(400, 401, 403, 404),
        sync_to_thread=True,
    )
    def history(
        self,
        request: Request,
        api: NamedDependency[ApiState],
        tenant_id: TenantId,
        limit: Annotated[
            int, QueryParameter(ge=1, le=1000, description="Newest changes first")
        ] = 100,
    ) -> RecordingSettingsHistory:
        _host(request, api)
        checked_tenant_id(tenant_id)
        try:
            with session_scope(api.engine) as session:
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

    @get(
        "/daily-conversation-audio-recordings/deletions",
        operation_id="listArchiveDeletions",
        summary="Archives deleted by retention: which, when, under which retention",
        description=HOST_ONLY,
        responses=error_responses(400, 401, 403),
        sync_to_thread=True,
    )
    def deletions(
        self,
        request: Request,
        api: NamedDependency[ApiState],
        tenant_id: Annotated[
            str | None,
            QueryParameter(name="tenantId", description="Only this tenant", max_length=63),
        ] = None,
        limit: Annotated[
            int, QueryParameter(ge=1, le=1000, description="Entries per page, newest first")
        ] = 100,
        cursor: Annotated[
            str | None, QueryParameter(description="The previous page's nextCursor", max_length=20)
        ] = None,
    ) -> ArchiveDeletionPage:
        _host(request, api)
        if tenant_id:
            checked_tenant_id(tenant_id)
        if cursor is not None and (not cursor.isdigit() or int(cursor) < 1):
            raise ApiError(400, "invalid_cursor", "cursor must be a previous page's nextCursor")
        with session_scope(api.engine) as session:
            rows = archive_deletions(
                session,
                tenant_id=tenant_id or None,
                before_id=int(cursor) if cursor else None,
                limit=limit,
            )
            entries = [
                ArchiveDeletionEntry(
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
                for row in rows
            ]
        more = len(entries) == limit
        return ArchiveDeletionPage(entries, str(entries[-1].id) if more else None)
