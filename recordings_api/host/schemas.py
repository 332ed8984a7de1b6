"""Host administration bodies (camelCase on the wire); unknown fields are refused."""

from typing import Annotated

import msgspec

from recordings.db.models import MAX_RETENTION_DAYS, MIN_RETENTION_DAYS


class RecordingSettings(msgspec.Struct, rename="camel"):
    """A tenant's feature settings and who last changed them."""

    tenant_id: str
    enabled: bool
    retention_days: Annotated[int, msgspec.Meta(ge=MIN_RETENTION_DAYS, le=MAX_RETENTION_DAYS)]
    legal_hold: Annotated[
        bool, msgspec.Meta(description="While true, retention deletes nothing of this tenant")
    ]
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
    legal_hold: Annotated[
        bool | None, msgspec.Meta(description="Suspend (true) or resume (false) deletion")
    ] = None


class RecordingSettingsHistoryEntry(msgspec.Struct, rename="camel", omit_defaults=True):
    """One change: who, when, before and after (before is absent for the first setting)."""

    changed_by: str
    changed_at: Annotated[str, msgspec.Meta(description="ISO 8601 UTC")]
    enabled_after: bool
    retention_days_after: int
    enabled_before: bool | None = None
    retention_days_before: int | None = None
    legal_hold_before: bool | None = None
    legal_hold_after: bool | None = None


class RecordingSettingsHistory(msgspec.Struct, rename="camel"):
    tenant_id: str
    changes: Annotated[
        list[RecordingSettingsHistoryEntry], msgspec.Meta(description="Newest first")
    ]


class ArchiveDeletionEntry(msgspec.Struct, rename="camel", omit_defaults=True):
    """One archive deleted by retention (state `deleted`), or a deletion a crash interrupted
    (`deleting`, settled by the next cleanup) or that was called off (`abandoned`)."""

    id: int
    tenant_id: str
    hour: Annotated[str, msgspec.Meta(description="The archive's hour, ISO 8601 UTC")]
    object_key: str
    retention_days: Annotated[int, msgspec.Meta(description="The retention that expired it")]
    state: str
    requested_at: str
    sha256: Annotated[str | None, msgspec.Meta(description="SHA-256 of the deleted ZIP")] = None
    size_bytes: int | None = None
    deleted_at: str | None = None
    run_id: Annotated[str | None, msgspec.Meta(description="The Dagster run")] = None


class ArchiveDeletionPage(msgspec.Struct, rename="camel", omit_defaults=True):
    """Newest first. Pass `nextCursor` as `cursor` for the next (older) page."""

    deletions: list[ArchiveDeletionEntry]
    next_cursor: str | None = None
