"""Response bodies of the tenants' endpoints (camelCase on the wire)."""

from typing import Annotated, Literal

import msgspec

HourState = Literal["available", "pending", "failed", "expired"]


class HourEntry(msgspec.Struct, rename="camel", omit_defaults=True):
    """One hour of the day. Only `available` hours carry a link and the archive's evidence."""

    hour: Annotated[int, msgspec.Meta(ge=0, le=23, description="Hour of the UTC day, 0-23")]
    hour_start: Annotated[str, msgspec.Meta(description="Start of the hour, ISO 8601 UTC")]
    status: Annotated[
        HourState,
        msgspec.Meta(
            description="available: the archive exists; pending: not archived yet (the nightly "
            "run has not reached it or is retrying); failed: the last run for this hour failed "
            "and operators have been alerted; expired: outside the tenant's retention"
        ),
    ]
    url: Annotated[
        str | None,
        msgspec.Meta(description="Signed download link (no bearer token needed), valid 24 h"),
    ] = None
    expires_at: Annotated[str | None, msgspec.Meta(description="When `url` expires")] = None
    size_bytes: Annotated[int | None, msgspec.Meta(description="Size of the ZIP")] = None
    sha256: Annotated[str | None, msgspec.Meta(description="SHA-256 of the ZIP, hex")] = None
    recording_count: Annotated[
        int | None, msgspec.Meta(description="Recordings archived in the ZIP")
    ] = None
    conversation_count: Annotated[
        int | None, msgspec.Meta(description="Conversations with a recording in the ZIP")
    ] = None
    failed_recording_count: Annotated[
        int | None,
        msgspec.Meta(
            description="Recordings of the hour that could not be archived; each is listed "
            "with its reason in the ZIP's metadata.json"
        ),
    ] = None


class DayLinks(msgspec.Struct, rename="camel"):
    """The 24 hours of one UTC day for the token's tenant."""

    tenant_id: str
    utc_day: Annotated[str, msgspec.Meta(description="The day asked for, YYYY-MM-DD")]
    hours: Annotated[list[HourEntry], msgspec.Meta(min_length=24, max_length=24)]
