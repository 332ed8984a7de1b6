"""Small helpers shared by the controllers: times on the wire, who is asking, tenant ids."""

from datetime import UTC, datetime

from litestar.connection import ASGIConnection

from recordings.keys import InvalidIdentifierError, validate_tenant_id
from recordings_api.errors import ApiError


def iso_utc(moment: datetime) -> str:
    """ISO 8601 in UTC with a `Z`, the one time format of the API."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def client_of(connection: ASGIConnection) -> tuple[str | None, str | None]:
    """The client's address and user agent, as the audit log records them."""
    address = connection.client.host if connection.client else None
    return address, connection.headers.get("user-agent")


def checked_tenant_id(tenant_id: str) -> str:
    """A tenant id from a host request, or a 400: ids are slugs (see `recordings.keys`), so
    anything else (a path segment, odd Unicode) names no tenant and is refused before any
    lookup, even if a row with that id was written into the database behind our back."""
    try:
        return validate_tenant_id(tenant_id)
    except InvalidIdentifierError as exc:
        raise ApiError(400, "invalid_request", str(exc)) from None
