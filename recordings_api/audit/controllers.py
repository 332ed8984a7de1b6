"""The audit log through the API: a tenant reads its own entries, the host reads everyone's.

Both endpoints share one filter (time range, action, outcome) and keyset pagination on the
entry id, newest first, so a compliance team can walk a month of evidence page by page while
new entries keep arriving.
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Literal

from litestar import Controller, Request, get
from litestar.di import NamedDependency, Provide
from litestar.params import QueryParameter

from recordings.db.engine import session_scope
from recordings.db.models import DownloadAuditEntry
from recordings.downloads import AuditQuery, read_audit
from recordings_api.audit.schemas import AuditEntry, AuditPage
from recordings_api.auth import authenticate, requires_permission
from recordings_api.errors import ApiError, error_responses
from recordings_api.state import ApiState
from recordings_api.wire import checked_tenant_id, iso_utc

MAX_PAGE = 1000


def _utc(moment: datetime | None, name: str) -> datetime | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is before the first representable instant
        raise ApiError(
            400, "invalid_request", f"{name} is outside the years 1 to 9999 in UTC"
        ) from None


@dataclass(frozen=True)
class AuditFilter:
    """The query parameters, checked only once the caller is authenticated (a stranger gets
    401, not a lesson in our parameters)."""

    since: datetime | None
    until: datetime | None
    action: str | None
    outcome: str | None
    limit: int
    cursor: str | None

    def query(self, tenant_id: str | None) -> AuditQuery:
        before_id = None
        if self.cursor is not None:
            if not self.cursor.isdigit() or int(self.cursor) < 1:
                raise ApiError(400, "invalid_cursor", "cursor must be a previous page's nextCursor")
            before_id = int(self.cursor)
        since, until = _utc(self.since, "since"), _utc(self.until, "until")
        if since is not None and until is not None and since >= until:
            raise ApiError(400, "invalid_request", "since must be earlier than until")
        return AuditQuery(
            tenant_id=tenant_id,
            since=since,
            until=until,
            action=self.action,
            outcome=self.outcome,
            before_id=before_id,
            limit=self.limit,
        )


def provide_audit_filter(
    since: Annotated[
        datetime | None,
        QueryParameter(description="Entries at or after this time (ISO 8601; UTC if no offset)"),
    ] = None,
    until: Annotated[
        datetime | None, QueryParameter(description="Entries before this time (ISO 8601)")
    ] = None,
    action: Annotated[
        Literal["list_links", "download"] | None, QueryParameter(description="Only this action")
    ] = None,
    outcome: Annotated[
        str | None,
        QueryParameter(
            description="Only this outcome, e.g. granted or rate_limited", max_length=40
        ),
    ] = None,
    limit: Annotated[
        int, QueryParameter(ge=1, le=MAX_PAGE, description="Entries per page (1-1000)")
    ] = 100,
    cursor: Annotated[
        str | None,
        QueryParameter(description="The previous page's nextCursor", max_length=20),
    ] = None,
) -> AuditFilter:
    return AuditFilter(since, until, action, outcome, limit, cursor)


def _entry(row: DownloadAuditEntry) -> AuditEntry:
    return AuditEntry(
        id=row.id,
        occurred_at=iso_utc(row.occurred_at),
        action=row.action,
        outcome=row.outcome,
        status_code=row.status_code,
        tenant_id=row.tenant_id,
        client_subject=row.client_subject,
        utc_day=row.utc_day.isoformat() if row.utc_day else None,
        hour=iso_utc(row.hour) if row.hour else None,
        object_key=row.object_key,
        client_address=row.client_address,
        user_agent=row.user_agent,
    )


def _page(api: ApiState, query: AuditQuery) -> AuditPage:
    with session_scope(api.engine) as session:
        rows = read_audit(session, query)
        entries = [_entry(row) for row in rows]
    more = len(entries) == query.limit
    return AuditPage(entries=entries, next_cursor=str(entries[-1].id) if more else None)


AUDIT_DEPENDENCIES = {"audit_filter": Provide(provide_audit_filter, sync_to_thread=False)}


class TenantAuditController(Controller):
    path = "/api/v1/daily-conversation-audio-recordings/audit"
    tags = ("tenant",)
    dependencies = AUDIT_DEPENDENCIES

    @get(
        operation_id="listMyDownloadAudit",
        summary="The token's tenant's audit log: every links request and download attempt",
        description="Needs a bearer token with the tenant claim and the read permission. "
        "Readable even while the feature is disabled: the evidence outlives the feature.",
        responses=error_responses(400, 401, 403),
        security=[{"BearerToken": []}],
        sync_to_thread=True,
    )
    def list_own(
        self,
        request: Request,
        api: NamedDependency[ApiState],
        audit_filter: NamedDependency[AuditFilter],
    ) -> AuditPage:
        principal = authenticate(request, api.settings.tokens)
        requires_permission(principal, api.settings.tokens.read_permission)
        if not principal.tenant_id:
            raise ApiError(403, "permission_missing", "the token names no tenant")
        return _page(api, audit_filter.query(principal.tenant_id))


class HostAuditController(Controller):
    path = "/api/v1/host/daily-conversation-audio-recordings/audit"
    tags = ("host",)
    dependencies = AUDIT_DEPENDENCIES

    @get(
        operation_id="listDownloadAudit",
        summary="Every tenant's audit log, including requests that proved no tenant",
        description="Needs a bearer token with the host permission.",
        responses=error_responses(400, 401, 403),
        security=[{"BearerToken": []}],
        sync_to_thread=True,
    )
    def list_all(
        self,
        request: Request,
        api: NamedDependency[ApiState],
        audit_filter: NamedDependency[AuditFilter],
        tenant_id: Annotated[
            str | None,
            QueryParameter(name="tenantId", description="Only this tenant", max_length=63),
        ] = None,
    ) -> AuditPage:
        principal = authenticate(request, api.settings.tokens)
        requires_permission(principal, api.settings.tokens.host_permission)
        if tenant_id:
            checked_tenant_id(tenant_id)
        return _page(api, audit_filter.query(tenant_id or None))
