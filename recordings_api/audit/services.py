"""Reading the audit log: one filter (time range, action, outcome) and keyset pagination on the
entry id, newest first, so a compliance team can walk a month of evidence page by page while
new entries keep arriving.
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Literal

import sqlalchemy as sa
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from recordings.db.engine import session_scope
from recordings.db.models import DownloadAuditEntry
from recordings.downloads import AuditQuery, read_audit
from recordings_api.audit.schemas import AuditEntry, AuditPage
from recordings_api.errors import ApiError
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


@dataclass(frozen=True)
class AuditLog:
    """Pages of the audit log, for a tenant (its own) or for the host (anyone's)."""

    engine: sa.Engine

    def tenant_page(self, tenant_id: str, audit_filter: AuditFilter) -> AuditPage:
        """A page of one tenant's entries (the tenant's own log)."""
        return self._page(audit_filter.query(tenant_id))

    def page(self, tenant_id: str | None, audit_filter: AuditFilter) -> AuditPage:
        """A page of every tenant's entries, or of one tenant's (the host's view)."""
        if tenant_id:
            checked_tenant_id(tenant_id)
        return self._page(audit_filter.query(tenant_id or None))

    def _page(self, query: AuditQuery) -> AuditPage:
        with session_scope(self.engine) as session:
            rows = read_audit(session, query)
            entries = [_entry(row) for row in rows]
        more = len(entries) == query.limit
        return AuditPage(entries=entries, next_cursor=str(entries[-1].id) if more else None)


def provide_audit_log(api: NamedDependency[ApiState]) -> AuditLog:
    return AuditLog(api.engine)
