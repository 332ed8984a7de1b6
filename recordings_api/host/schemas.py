"""Host administration bodies (camelCase on the wire); unknown fields are refused."""

from typing import Annotated

import msgspec

from recordings.db.models import MAX_RETENTION_DAYS, MIN_RETENTION_DAYS


class RecordingSettings(msgspec.Struct, rename="camel"):
    """A tenant's feature settings and who last changed them."""

    tenant_id: str
    enabled: bool
    retention_days: Annotated[int, msgspec.Meta(ge=MIN_RETENTION_DAYS, le=MAX_RETENTION_DAYS)]
    updated_by: str
    updated_at: Annotated[str, msgspec.Meta(description="ISO 8601 UTC")]


class RecordingSettingsList(msgspec.Struct, rename="camel"):
    tenants: list[RecordingSettings]


class RecordingSettingsChange(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    """What to change; omitted fields keep their value. Retention is checked by the API (a 400
    that says the allowed range), not by the schema, so the message can say what to do."""

    enabled: bool | None = None
    retention_days: Annotated[
        int | None,
        msgspec.Meta(
            description=f"Days an archive is kept, {MIN_RETENTION_DAYS} to {MAX_RETENTION_DAYS}"
        ),
    ] = None


class RecordingSettingsHistoryEntry(msgspec.Struct, rename="camel", omit_defaults=True):
    """One change: who, when, before and after (before is absent for the first setting)."""

    changed_by: str
    changed_at: Annotated[str, msgspec.Meta(description="ISO 8601 UTC")]
    enabled_after: bool
    retention_days_after: int
    enabled_before: bool | None = None
    retention_days_before: int | None = None


class RecordingSettingsHistory(msgspec.Struct, rename="camel"):
    tenant_id: str
    changes: Annotated[
        list[RecordingSettingsHistoryEntry], msgspec.Meta(description="Newest first")
    ]
