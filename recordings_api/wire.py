"""Small helpers shared by the controllers: times on the wire, who is asking."""

from datetime import UTC, datetime

from litestar import Request


def iso_utc(moment: datetime) -> str:
    """ISO 8601 in UTC with a `Z`, the one time format of the API."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def client_of(request: Request) -> tuple[str | None, str | None]:
    """The client's address and user agent, as the audit log records them."""
    address = request.client.host if request.client else None
    return address, request.headers.get("user-agent")
