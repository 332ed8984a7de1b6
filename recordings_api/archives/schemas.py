"""Response bodies (camelCase on the wire)."""

import msgspec


class HourEntry(msgspec.Struct, rename="camel", omit_defaults=True):
    hour: int
    hour_start: str
    status: str
    url: str | None = None
    expires_at: str | None = None
    size_bytes: int | None = None
    sha256: str | None = None
    recording_count: int | None = None
    conversation_count: int | None = None
    failed_recording_count: int | None = None


class DayLinks(msgspec.Struct, rename="camel"):
    tenant_id: str
    utc_day: str
    hours: list[HourEntry]
