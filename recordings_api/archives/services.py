"""What the API knows about a tenant's day, read from the Dagster instance.

The pipeline records one materialization per tenant-hour with the archive's evidence in its
metadata (object key, size, SHA-256, counts; `recordings.archive.evidence`). The day's 24 keys
are looked up with `recordings_instance.archives.latest_evidence`: two indexed reads, the second
only for materializations its `EvidenceCache` does not hold yet.

Hours without a materialization are `failed` when the last run that planned them failed and
will not be retried, and `pending` otherwise; the same two indexed steps over the
"materialization planned" events name those runs, so a missing hour never costs a scan of the
asset's history. (Dagster writes one planned event per partition, also for ranged runs, unless
DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS is set, which also stops Dagster itself from
marking a failed run's partitions as failed: leave it unset.) Hours outside the tenant's
retention are `expired`.
"""

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Literal

import dagster as dg

from recordings.archive.evidence import ArchiveEvidence, EvidenceError
from recordings.keys import archive_partition_key, day_hours
from recordings.retention import is_kept
from recordings_instance.archives import (
    ARCHIVE_ASSET_KEY,
    EvidenceCache,
    RecordedEvidence,
    latest_evidence,
    latest_storage_ids,
)

HourState = Literal["available", "pending", "failed", "expired"]

# Dagster's run tag saying the run-retry daemon will retry a failed run. Dagster exports no
# public name for it, only a private module does; tests/api/test_services.py pins this copy to
# Dagster's value, so an upgrade that changes it fails a test, not the API.
WILL_RETRY_TAG = "dagster/will_retry"

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HourStatus:
    hour: datetime
    status: HourState
    evidence: ArchiveEvidence | None = None  # set when available


def day_statuses(
    instance: dg.DagsterInstance,
    tenant_id: str,
    day: date,
    retention_days: int,
    now: datetime | None = None,
    cache: EvidenceCache | None = None,
    deleted: Mapping[datetime, datetime] | None = None,
) -> list[HourStatus]:
    """The 24 hours of `day` for `tenant_id`, each with its status and archive evidence.

    `deleted` maps hours whose archive the retention job deleted to when: such an hour is
    `expired` unless it was archived again afterwards, so raising a tenant's retention never
    makes a deleted hour look `pending`.

    An hour whose latest materialization is not readable evidence (a key missing or of the
    wrong type: an event reported by hand, or by a pipeline of another shape) is `failed`, and
    each lookup logs an error naming the partition and the key. It cannot be `available`: a
    link would come without the size and SHA-256 a client checks the download against. Nor
    `pending`: a materialization never changes, so waiting does not help; an operator re-runs
    the hour (a backfill of its partition), which records new evidence. A deletion by the
    retention job still makes it `expired`.
    """
    today = (now or datetime.now(UTC)).date()
    hours = day_hours(day)
    if not is_kept(day, retention_days, today):
        return [HourStatus(hour, "expired") for hour in hours]
    deleted = deleted or {}
    keys = {archive_partition_key(tenant_id, hour): hour for hour in hours}
    found = latest_evidence(instance, keys, cache)
    recorded = {key: r for key, r in found.items() if isinstance(r, RecordedEvidence)}
    unreadable = {key: e for key, e in found.items() if isinstance(e, EvidenceError)}
    for key, error in sorted(unreadable.items()):
        logger.error(
            "%s: the latest materialization is not archive evidence (%s); the hour is reported "
            "failed until it is archived again (backfill the partition)",
            key,
            error,
        )
    missing = set(keys) - set(found)
    failed_keys = set(unreadable) | (_failed_partitions(instance, missing) if missing else set())
    statuses = []
    for key, hour in keys.items():
        archive = recorded.get(key)
        deleted_at = deleted.get(hour)
        if deleted_at is not None and (
            archive is None or archive.materialized_at <= deleted_at.timestamp()
        ):
            statuses.append(HourStatus(hour, "expired"))
        elif archive is not None:
            statuses.append(HourStatus(hour, "available", archive.evidence))
        else:
            statuses.append(HourStatus(hour, "failed" if key in failed_keys else "pending"))
    return statuses


def _failed_partitions(instance: dg.DagsterInstance, partition_keys: set[str]) -> set[str]:
    """The partitions whose most recent planned run failed for good (no retry coming)."""
    planned = latest_storage_ids(
        instance, partition_keys, dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED
    )
    if not planned:
        return set()
    records = instance.event_log_storage.get_event_records(
        dg.EventRecordsFilter(
            dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED,
            asset_key=ARCHIVE_ASSET_KEY,
            storage_ids=list(planned.values()),
        ),
        limit=len(planned),
    )
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
