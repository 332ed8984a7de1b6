"""What the API knows about a tenant's day, read from the Dagster instance.

The pipeline records one materialization per tenant-hour with the archive's evidence in its
metadata (object key, size, SHA-256, counts). The fast path reads the latest storage id per
partition for the day's 24 keys, then those records (~7 ms for 24 partitions on SQLite).
Hours without a materialization are `failed` when the last run that planned them failed and
will not be retried, and `pending` otherwise; the same two indexed steps over the
"materialization planned" events name those runs, so a missing hour never costs a scan of the
asset's history. Hours outside the tenant's retention are `expired`.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal

import dagster as dg
from dagster._core.storage.tags import WILL_RETRY_TAG

from recordings.keys import ARCHIVE_ASSET_NAME, archive_partition_key, day_hours

ARCHIVE_ASSET_KEY = dg.AssetKey(ARCHIVE_ASSET_NAME)
HourState = Literal["available", "pending", "failed", "expired"]


@dataclass(frozen=True)
class HourStatus:
    hour: datetime
    status: HourState
    metadata: dict[str, Any]


def is_expired(day: date, retention_days: int, today: date) -> bool:
    """Day D is kept while `today - D <= retention_days`."""
    return (today - day).days > retention_days


def day_statuses(
    instance: dg.DagsterInstance,
    tenant_id: str,
    day: date,
    retention_days: int,
    now: datetime | None = None,
) -> list[HourStatus]:
    """The 24 hours of `day` for `tenant_id`, each with its status and archive evidence."""
    today = (now or datetime.now(UTC)).date()
    hours = day_hours(day)
    if is_expired(day, retention_days, today):
        return [HourStatus(hour, "expired", {}) for hour in hours]
    keys = {archive_partition_key(tenant_id, hour): hour for hour in hours}
    latest = instance.get_latest_storage_id_by_partition(
        ARCHIVE_ASSET_KEY, dg.DagsterEventType.ASSET_MATERIALIZATION, set(keys)
    )
    metadata_by_key: dict[str, dict[str, Any]] = {}
    if latest:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=ARCHIVE_ASSET_KEY, storage_ids=list(latest.values())),
            limit=len(latest),
        ).records
        for record in records:
            materialization = record.asset_materialization
            if materialization is not None and record.partition_key in keys:
                metadata_by_key[record.partition_key] = {
                    name: value.value for name, value in materialization.metadata.items()
                }
    missing = set(keys) - set(metadata_by_key)
    failed_keys = _failed_partitions(instance, missing) if missing else set()
    statuses = []
    for key, hour in keys.items():
        if key in metadata_by_key:
            statuses.append(HourStatus(hour, "available", metadata_by_key[key]))
        else:
            statuses.append(HourStatus(hour, "failed" if key in failed_keys else "pending", {}))
    return statuses


def _failed_partitions(instance: dg.DagsterInstance, partition_keys: set[str]) -> set[str]:
    """The partitions whose most recent planned run failed for good (no retry coming)."""
    planned = instance.get_latest_storage_id_by_partition(
        ARCHIVE_ASSET_KEY, dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED, partition_keys
    )
    if not planned:
        return set()
    records = instance.fetch_planned_materializations(
        dg.AssetRecordsFilter(asset_key=ARCHIVE_ASSET_KEY, storage_ids=list(planned.values())),
        limit=len(planned),
    ).records
    run_by_partition = {
        record.partition_key: record.run_id
        for record in records
        if record.partition_key in partition_keys
    }
    runs = instance.get_runs(dg.RunsFilter(run_ids=sorted(set(run_by_partition.values()))))
    failed_runs = {
        run.run_id
        for run in runs
        if run.status in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)
        and run.tags.get(WILL_RETRY_TAG) != "true"
    }
    return {key for key, run_id in run_by_partition.items() if run_id in failed_runs}
