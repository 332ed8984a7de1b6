"""Identifiers and the object-key layout, the contract between pipeline, API and storage.

Tenant, conversation, session and recording ids end up in S3 keys, ZIP entry names and Dagster
partition keys, so they are restricted to a conservative alphabet: nothing that could climb out
of a tenant's prefix (`..`, `/`), collide with Dagster's multi-partition separator (`|`), or be
read differently by two systems.
"""

import hashlib
import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

ARCHIVE_FEATURE_PREFIX = "daily-conversation-audio-recordings"

_TENANT_ID = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_OBJECT_ID = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,126}[A-Za-z0-9])?$")


class InvalidIdentifierError(ValueError):
    """An id would be unsafe in an object key, a ZIP entry name or a partition key."""


def is_valid_tenant_id(tenant_id: str) -> bool:
    """Whether `tenant_id` is a lowercase slug (a-z, 0-9, '-', at most 63 characters)."""
    return _TENANT_ID.fullmatch(tenant_id) is not None


def validate_tenant_id(tenant_id: str) -> str:
    """Return `tenant_id` if it is a valid tenant id (`is_valid_tenant_id`), else raise."""
    if not is_valid_tenant_id(tenant_id):
        raise InvalidIdentifierError(
            f"tenant id {tenant_id!r} is invalid: use 1-63 lowercase letters, digits or '-', "
            "starting and ending with a letter or digit"
        )
    return tenant_id


def validate_object_id(kind: str, value: str) -> str:
    """Return `value` if it is a safe conversation, session or recording id."""
    if not _OBJECT_ID.fullmatch(value) or ".." in value:
        raise InvalidIdentifierError(
            f"{kind} id {value!r} is invalid: use 1-128 letters, digits, '.', '_' or '-', "
            "starting and ending with a letter or digit, without '..'"
        )
    return value


def hour_start(moment: datetime) -> datetime:
    """The start of the UTC hour containing `moment` (which must be timezone-aware)."""
    if moment.tzinfo is None:
        raise ValueError("hour_start needs a timezone-aware datetime")
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def day_hours(day: date) -> list[datetime]:
    """The 24 UTC hour starts of `day`."""
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return [midnight + timedelta(hours=h) for h in range(24)]


def tenant_archive_prefix(tenant_id: str) -> str:
    """Every archive of a tenant lives under this prefix, and nothing else does."""
    return f"tenants/{validate_tenant_id(tenant_id)}/{ARCHIVE_FEATURE_PREFIX}/"


def archive_key(tenant_id: str, hour: datetime) -> str:
    """`tenants/{tenant}/daily-conversation-audio-recordings/{yyyy}/{MM}/{dd}/{HH}.zip`."""
    start = hour_start(hour)
    return f"{tenant_archive_prefix(tenant_id)}{start:%Y/%m/%d/%H}.zip"


_ARCHIVE_TAIL = re.compile(r"^(\d{4})/(\d{2})/(\d{2})/(\d{2})\.zip$")


def parse_archive_key(tenant_id: str, key: str) -> datetime | None:
    """The hour of `key` if it is exactly one of `tenant_id`'s archive keys, else None.

    The retention job deletes only what this accepts, so it is strict: the tenant's prefix, a
    real date and hour, `.zip`, and the key must be the one `archive_key` would produce.
    """
    prefix = tenant_archive_prefix(tenant_id)
    if not key.startswith(prefix):
        return None
    match = _ARCHIVE_TAIL.fullmatch(key[len(prefix) :])
    if match is None:
        return None
    year, month, day, hour = (int(part) for part in match.groups())
    try:
        start = datetime(year, month, day, hour, tzinfo=UTC)
    except ValueError:
        return None
    return start if archive_key(tenant_id, start) == key else None


def source_key(
    tenant_id: str, conversation_id: str, session_id: str, recording_id: str, extension: str
) -> str:
    """Where an ingested source recording is stored (as the conversation platform would)."""
    ext = extension.lower().lstrip(".")
    if not re.fullmatch(r"[a-z0-9]{1,8}", ext):
        raise InvalidIdentifierError(f"file extension {extension!r} is invalid")
    return (
        f"tenants/{validate_tenant_id(tenant_id)}/conversations/"
        f"{validate_object_id('conversation', conversation_id)}/"
        f"{validate_object_id('session', session_id)}/"
        f"{validate_object_id('recording', recording_id)}.{ext}"
    )


def tenant_source_prefix(tenant_id: str) -> str:
    """Every source recording of a tenant lives under this prefix (see `source_key`)."""
    return f"tenants/{validate_tenant_id(tenant_id)}/"


_UNSAFE_KEY_CHARACTERS = re.compile(r"[\x00-\x1f\x7f\\]")


def is_tenant_source_key(tenant_id: str, key: str) -> bool:
    """Whether `key` names an object inside `tenant_id`'s own prefix, and only there.

    Recording rows come from the conversation platform's database, so the archive builder
    checks each source key before reading it with credentials that can read every tenant's
    objects: it must lie under `tenants/{tenant}/` with no empty, `.` or `..` segment (an HTTP
    client or a server may resolve those, and `tenants/acme/../globex/x` would then be
    globex's), no backslash and no control character.
    """
    prefix = tenant_source_prefix(tenant_id)
    if not key.startswith(prefix) or _UNSAFE_KEY_CHARACTERS.search(key):
        return False
    segments = key[len(prefix) :].split("/")
    return all(segment not in {"", ".", ".."} for segment in segments)


def zip_entry_name(conversation_id: str, session_id: str, recording_id: str) -> str:
    """`{conversationId}/{sessionId}/{recordingId}.opus` inside the hourly ZIP."""
    return (
        f"{validate_object_id('conversation', conversation_id)}/"
        f"{validate_object_id('session', session_id)}/"
        f"{validate_object_id('recording', recording_id)}.opus"
    )


ARCHIVE_ASSET_NAME = "hourly_conversation_audio_archive"

SHARD_COUNT = 16
"""The archive is this many Dagster assets, each holding a fixed share of the tenants.

Dagster's partition status of an asset costs about 7 us per materialized key (the UI parses
every key): 10,000 tenants x the 192 hours of the window in one asset is 1.92 M keys, ~13 s a
query. Sixteen shards keep an asset at ~120,000 keys (625 tenants) at 10,000 tenants. Changing
the count moves tenants between assets: their earlier archives would be looked up under the
wrong key, so it is fixed for the life of a deployment."""


def tenant_shard(tenant_id: str) -> int:
    """The shard (0 to SHARD_COUNT - 1) whose asset holds `tenant_id`'s hours.

    The first 4 bytes of the SHA-256 of the id, big-endian, modulo SHARD_COUNT: the same in
    every process, Python version and machine (Python's `hash()` of a string is salted per
    process), and evenly spread whatever the ids look like.
    """
    digest = hashlib.sha256(tenant_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") % SHARD_COUNT


def tenants_by_shard(tenant_ids: Iterable[str]) -> dict[int, list[str]]:
    """`tenant_ids` grouped by shard, each group in the order given."""
    grouped: dict[int, list[str]] = {}
    for tenant_id in tenant_ids:
        grouped.setdefault(tenant_shard(tenant_id), []).append(tenant_id)
    return grouped


def shard_name(shard: int) -> str:
    """`shard_07`: the last part of the shard's asset key, and part of its jobs' names."""
    if not 0 <= shard < SHARD_COUNT:
        raise ValueError(f"shard {shard} is not between 0 and {SHARD_COUNT - 1}")
    return f"shard_{shard:02d}"


def shard_asset_path(shard: int) -> list[str]:
    """The shard's asset key path: the archive's name as a prefix (one folder in the UI), then
    `shard_name(shard)`."""
    return [ARCHIVE_ASSET_NAME, shard_name(shard)]


TENANT_DIMENSION = "tenant"
HOUR_DIMENSION = "hour"
HOUR_PARTITION_FORMAT = "%Y-%m-%d-%H:%M"


def hour_partition_key(hour: datetime) -> str:
    """The hourly dimension's key, e.g. `2025-12-12-13:00`."""
    return hour_start(hour).strftime(HOUR_PARTITION_FORMAT)


def archive_partition_key(tenant_id: str, hour: datetime) -> str:
    """Dagster's multi-partition key for a tenant-hour: dimensions sorted by name, joined by '|'.

    "hour" sorts before "tenant", so acme's 13:00 of 2025-12-12 is `2025-12-12-13:00|acme`.
    The API computes keys with this function without importing Dagster.
    """
    return f"{hour_partition_key(hour)}|{validate_tenant_id(tenant_id)}"


def parse_archive_partition_key(key: str) -> tuple[str, datetime]:
    """Inverse of `archive_partition_key`."""
    hour_part, sep, tenant_id = key.partition("|")
    if not sep:
        raise ValueError(f"{key!r} is not a tenant-hour partition key")
    hour = datetime.strptime(hour_part, HOUR_PARTITION_FORMAT).replace(tzinfo=UTC)
    return validate_tenant_id(tenant_id), hour
