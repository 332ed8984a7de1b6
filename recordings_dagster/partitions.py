"""The archive's partitions: tenant x UTC hour, over a bounded, sliding window of days.

Dagster advises at most ~100,000 partitions per asset, and tenant x hour grows by 24 keys per
tenant per day: a fixed start date would grow without bound (1,000 tenants x one year is 8.76 M
keys, 64 s to list). Archives live at most 7 days, so hours older than that have no use as
partitions: the hourly dimension starts `PARTITION_WINDOW_DAYS` before the day the code location
was loaded. Materializations of older hours stay in the event log (the API reads them there).

The tenants are split into `SHARD_COUNT` shards by a hash of their id (`recordings.keys`), each
shard an asset of its own with its own dynamic partitions (`tenants_07`): Dagster's partition
status costs about 7 us per materialized key, and 10,000 tenants x the window's 192 hours in one
asset would be 1.92 M keys; a shard holds ~120,000 of them. Every shard shares the hour window.
"""

from datetime import UTC, datetime, timedelta

import dagster as dg

from recordings.db.models import MAX_RETENTION_DAYS
from recordings.keys import (
    HOUR_DIMENSION,
    HOUR_PARTITION_FORMAT,
    SHARD_COUNT,
    TENANT_DIMENSION,
)

# Retention's longest span plus yesterday, so every hour that may still exist in storage (and
# may need a re-run) is a partition.
PARTITION_WINDOW_DAYS = MAX_RETENTION_DAYS + 1


def window_start(now: datetime | None = None) -> datetime:
    """Midnight UTC, `PARTITION_WINDOW_DAYS` days before `now`."""
    today = (
        (now or datetime.now(UTC))
        .astimezone(UTC)
        .replace(hour=0, minute=0, second=0, microsecond=0)
    )
    return today - timedelta(days=PARTITION_WINDOW_DAYS)


hour_partitions = dg.HourlyPartitionsDefinition(
    start_date=window_start().strftime(HOUR_PARTITION_FORMAT),
    timezone="UTC",
    fmt=HOUR_PARTITION_FORMAT,
)


def tenant_partitions_name(shard: int) -> str:
    """The name of the shard's dynamic partitions of tenants (`tenants_07`)."""
    return f"tenants_{shard:02d}"


_TENANT_PARTITIONS = tuple(
    dg.DynamicPartitionsDefinition(name=tenant_partitions_name(shard))
    for shard in range(SHARD_COUNT)
)
_SHARD_PARTITIONS = tuple(
    dg.MultiPartitionsDefinition({TENANT_DIMENSION: tenants, HOUR_DIMENSION: hour_partitions})
    for tenants in _TENANT_PARTITIONS
)


def tenant_partitions_of(shard: int) -> dg.DynamicPartitionsDefinition:
    """The dynamic partitions holding the tenants of `shard`."""
    return _TENANT_PARTITIONS[shard]


def shard_partitions(shard: int) -> dg.MultiPartitionsDefinition:
    """The partitions of the shard's archive asset: its tenants x the hour window."""
    return _SHARD_PARTITIONS[shard]
