"""Host settings bodies (camelCase on the wire); unknown fields are refused."""

import msgspec


class RecordingSettings(msgspec.Struct, rename="camel"):
    tenant_id: str
    enabled: bool
    retention_days: int
    updated_by: str
    updated_at: str


class RecordingSettingsChange(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    enabled: bool | None = None
    retention_days: int | None = None
