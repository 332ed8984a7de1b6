"""The host operator reads and sets a tenant's feature settings; every change is recorded."""

from litestar import Controller, Request, get, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from recordings.catalog import CatalogError, UnknownTenantError, set_recording_settings
from recordings.db.engine import session_scope
from recordings.db.models import TenantRecordingSettings
from recordings_api.auth import authenticate, requires_permission
from recordings_api.errors import ApiError
from recordings_api.host.schemas import RecordingSettings, RecordingSettingsChange
from recordings_api.state import ApiState


def _body(row: TenantRecordingSettings) -> RecordingSettings:
    return RecordingSettings(
        tenant_id=row.tenant_id,
        enabled=row.enabled,
        retention_days=row.retention_days,
        updated_by=row.updated_by,
        updated_at=row.updated_at.isoformat().replace("+00:00", "Z"),
    )


class HostSettingsController(Controller):
    path = "/api/v1/host/tenants/{tenant_id:str}/daily-conversation-audio-recordings/settings"

    @get(operation_id="getTenantRecordingSettings", summary="A tenant's feature settings")
    async def read(
        self, request: Request, api: NamedDependency[ApiState], tenant_id: FromPath[str]
    ) -> RecordingSettings:
        principal = authenticate(request, api.settings.tokens)
        requires_permission(principal, api.settings.tokens.host_permission)
        with session_scope(api.engine) as session:
            row = session.get(TenantRecordingSettings, tenant_id)
            if row is None:
                raise ApiError(404, "unknown_tenant", f"tenant {tenant_id!r} has no settings")
            return _body(row)

    @put(operation_id="setTenantRecordingSettings", summary="Enable, disable, set retention")
    async def change(
        self,
        request: Request,
        api: NamedDependency[ApiState],
        tenant_id: FromPath[str],
        data: JSONBody[RecordingSettingsChange],
    ) -> RecordingSettings:
        principal = authenticate(request, api.settings.tokens)
        requires_permission(principal, api.settings.tokens.host_permission)
        change = data
        if change.enabled is None and change.retention_days is None:
            raise ApiError(400, "invalid_settings", "send enabled and/or retentionDays")
        try:
            with session_scope(api.engine) as session:
                row = set_recording_settings(
                    session,
                    tenant_id,
                    changed_by=principal.subject or "host",
                    enabled=change.enabled,
                    retention_days=change.retention_days,
                )
                return _body(row)
        except UnknownTenantError:
            raise ApiError(404, "unknown_tenant", f"tenant {tenant_id!r} does not exist") from None
        except CatalogError as exc:
            raise ApiError(400, "invalid_settings", str(exc)) from None
