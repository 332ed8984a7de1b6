"""The host operator reads and sets tenants' feature settings; every change is recorded."""

from typing import Annotated

from litestar import Controller, get, put
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody, PathParameter, QueryParameter

from recordings_api.auth import requires_host
from recordings_api.errors import error_responses
from recordings_api.host.schemas import (
    ArchiveDeletionPage,
    RecordingSettings,
    RecordingSettingsChange,
    RecordingSettingsHistory,
    RecordingSettingsList,
)
from recordings_api.host.services import HostService, provide_host

TENANT_SETTINGS = "/tenants/{tenant_id:str}/daily-conversation-audio-recordings/settings"
TenantId = Annotated[str, PathParameter(description="The tenant's id", max_length=63)]
HOST_ONLY = "Needs a bearer token with the host permission."


class HostSettingsController(Controller):
    path = "/api/v1/host"
    tags = ("host",)
    guards = [requires_host]  # noqa: RUF012 (Litestar's declared attribute type)
    dependencies = {"host": Provide(provide_host, sync_to_thread=False)}  # noqa: RUF012
    security = [{"BearerToken": []}]  # noqa: RUF012 (Litestar's declared attribute type)

    @get(
        "/daily-conversation-audio-recordings/settings",
        operation_id="listTenantRecordingSettings",
        summary="Every tenant's feature settings",
        description=HOST_ONLY,
        responses=error_responses(401, 403),
        sync_to_thread=True,
    )
    def list_all(self, host: NamedDependency[HostService]) -> RecordingSettingsList:
        return host.all_settings()

    @get(
        TENANT_SETTINGS,
        operation_id="getTenantRecordingSettings",
        summary="A tenant's feature settings",
        description=HOST_ONLY,
        responses=error_responses(400, 401, 403, 404),
        sync_to_thread=True,
    )
    def read(self, host: NamedDependency[HostService], tenant_id: TenantId) -> RecordingSettings:
        return host.settings(tenant_id)

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
        host: NamedDependency[HostService],
        tenant_id: TenantId,
        data: JSONBody[RecordingSettingsChange],
    ) -> RecordingSettings:
        return host.change(tenant_id, data)

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
        host: NamedDependency[HostService],
        tenant_id: TenantId,
        limit: Annotated[
            int, QueryParameter(ge=1, le=1000, description="Newest changes first")
        ] = 100,
    ) -> RecordingSettingsHistory:
        return host.history(tenant_id, limit)

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
        host: NamedDependency[HostService],
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
        return host.deletions(tenant_id, limit, cursor)
