"""The audit log through the API: a tenant reads its own entries, the host reads everyone's."""

from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency, Provide
from litestar.params import QueryParameter

from recordings_api.audit.schemas import AuditPage
from recordings_api.audit.services import (
    AuditFilter,
    AuditLog,
    provide_audit_filter,
    provide_audit_log,
)
from recordings_api.auth import (
    provide_token_tenant_id,
    requires_host,
    requires_reader,
    requires_tenant,
)
from recordings_api.errors import error_responses

AUDIT_DEPENDENCIES = {
    "audit_filter": Provide(provide_audit_filter, sync_to_thread=False),
    "audit_log": Provide(provide_audit_log, sync_to_thread=False),
}


class TenantAuditController(Controller):
    path = "/api/v1/daily-conversation-audio-recordings/audit"
    tags = ("tenant",)
    guards = [requires_reader, requires_tenant]  # noqa: RUF012 (Litestar's declared type)
    dependencies = {  # noqa: RUF012 (Litestar's declared attribute type)
        **AUDIT_DEPENDENCIES,
        "token_tenant_id": Provide(provide_token_tenant_id, sync_to_thread=False),
    }
    security = [{"BearerToken": []}]  # noqa: RUF012 (Litestar's declared attribute type)

    @get(
        operation_id="listMyDownloadAudit",
        summary="The token's tenant's audit log: every links request and download attempt",
        description="Needs a bearer token with the tenant claim and the read permission. "
        "Readable even while the feature is disabled: the evidence outlives the feature.",
        responses=error_responses(400, 401, 403),
        sync_to_thread=True,
    )
    def list_own(
        self,
        audit_log: NamedDependency[AuditLog],
        audit_filter: NamedDependency[AuditFilter],
        token_tenant_id: NamedDependency[str],
    ) -> AuditPage:
        return audit_log.tenant_page(token_tenant_id, audit_filter)


class HostAuditController(Controller):
    path = "/api/v1/host/daily-conversation-audio-recordings/audit"
    tags = ("host",)
    guards = [requires_host]  # noqa: RUF012 (Litestar's declared attribute type)
    dependencies = AUDIT_DEPENDENCIES
    security = [{"BearerToken": []}]  # noqa: RUF012 (Litestar's declared attribute type)

    @get(
        operation_id="listDownloadAudit",
        summary="Every tenant's audit log, including requests that proved no tenant",
        description="Needs a bearer token with the host permission.",
        responses=error_responses(400, 401, 403),
        sync_to_thread=True,
    )
    def list_all(
        self,
        audit_log: NamedDependency[AuditLog],
        audit_filter: NamedDependency[AuditFilter],
        tenant_id: Annotated[
            str | None,
            QueryParameter(name="tenantId", description="Only this tenant", max_length=63),
        ] = None,
    ) -> AuditPage:
        return audit_log.page(tenant_id, audit_filter)
