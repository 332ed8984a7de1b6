"""The archive's partitions: tenant x UTC hour, over a bounded, sliding window of days.

Dagster advises at most ~100,000 partitions per asset, and tenant x hour grows by 24 keys per
tenant per day: a fixed start date would grow without bound (1,000 tenants x one year is 8.76 M
keys, 64 s to list). Archives live at most 7 days, so hours older than that have no use as
partitions: the hourly dimension starts `PARTITION_WINDOW_DAYS` before the day the code location
was loaded. Materializations of older hours stay in the event log (the API reads them there).
"""

from datetime import UTC, datetime, timedelta

import dagster as dg

from recordings.db.models import MAX_RETENTION_DAYS
from recordings.keys import HOUR_DIMENSION, HOUR_PARTITION_FORMAT, TENANT_DIMENSION

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


tenant_partitions = dg.DynamicPartitionsDefinition(name="tenants")

hour_partitions = dg.HourlyPartitionsDefinition(
    start_date=window_start().strftime(HOUR_PARTITION_FORMAT),
    timezone="UTC",
    fmt=HOUR_PARTITION_FORMAT,
)

archive_partitions = dg.MultiPartitionsDefinition(
    {TENANT_DIMENSION: tenant_partitions, HOUR_DIMENSION: hour_partitions}
)
