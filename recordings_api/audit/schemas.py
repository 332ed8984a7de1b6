"""Audit log bodies (camelCase on the wire)."""

from typing import Annotated

import msgspec


class AuditEntry(msgspec.Struct, rename="camel", omit_defaults=True):
    """One links request or download attempt, whatever its outcome."""

    id: int
    occurred_at: Annotated[str, msgspec.Meta(description="ISO 8601 UTC")]
    action: Annotated[str, msgspec.Meta(description="list_links or download")]
    outcome: Annotated[
        str,
        msgspec.Meta(
            description="listed, granted, rate_limited, gone, feature_disabled, "
            "permission_missing, invalid_day, day_not_over, or the refused token/link's code"
        ),
    ]
    status_code: int
    tenant_id: Annotated[
        str | None, msgspec.Meta(description="Absent when the request proved no tenant")
    ] = None
    client_subject: Annotated[
        str | None,
        msgspec.Meta(
            description="The token subject; for downloads, the subject the link was issued to"
        ),
    ] = None
    utc_day: Annotated[str | None, msgspec.Meta(description="The day a listing asked for")] = None
    hour: Annotated[str | None, msgspec.Meta(description="The hour a download asked for")] = None
    object_key: str | None = None
    client_address: str | None = None
    user_agent: str | None = None


class AuditPage(msgspec.Struct, rename="camel", omit_defaults=True):
    """Newest first. Pass `nextCursor` as `cursor` for the next (older) page."""

    entries: list[AuditEntry]
    next_cursor: str | None = None
