"""What the API knows about a tenant's day, read from the Dagster instance.

The pipeline records one materialization per tenant-hour with the archive's evidence in its
metadata (object key, size, SHA-256, counts). The fast path reads the latest storage id per
partition for the day's 24 keys, then those records. Reading a record means deserializing the
whole event (the metadata the UI shows: failure tables and all), which is most of the cost, and
a materialization never changes once written: a rebuilt hour gets a new storage id. So the
evidence is kept in a bounded cache by storage id, and a repeated request only pays for the
storage-id lookup, which it cannot skip (it is what notices a new or rebuilt archive).

Hours without a materialization are `failed` when the last run that planned them failed and
will not be retried, and `pending` otherwise; the same two indexed steps over the
"materialization planned" events name those runs, so a missing hour never costs a scan of the
asset's history. (Dagster writes one planned event per partition, also for ranged runs, unless
DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS is set, which also stops Dagster itself from
marking a failed run's partitions as failed: leave it unset.) Hours outside the tenant's
retention are `expired`.
"""

import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal

import dagster as dg
from dagster._core.storage.tags import WILL_RETRY_TAG

from recordings.keys import ARCHIVE_ASSET_NAME, archive_partition_key, day_hours
from recordings.retention import is_kept

ARCHIVE_ASSET_KEY = dg.AssetKey(ARCHIVE_ASSET_NAME)
HourState = Literal["available", "pending", "failed", "expired"]


@dataclass(frozen=True, slots=True)
class ArchiveEvidence:
    """What a materialization says about its archive, as the API hands it out."""

    object_key: str
    size_bytes: int
    sha256: str
    recording_count: int
    conversation_count: int
    failed_recording_count: int
    materialized_at: float = 0.0  # the materialization's timestamp (epoch seconds)

    @classmethod
    def from_metadata(
        cls, metadata: Mapping[str, Any], materialized_at: float = 0.0
    ) -> "ArchiveEvidence":
        return cls(
            object_key=str(metadata.get("object_key", "")),
            size_bytes=int(metadata.get("size_bytes", 0)),
            sha256=str(metadata.get("sha256", "")),
            recording_count=int(metadata.get("recording_count", 0)),
            conversation_count=int(metadata.get("conversation_count", 0)),
            failed_recording_count=int(metadata.get("failed_recording_count", 0)),
            materialized_at=materialized_at,
        )


class EvidenceCache:
    """Archive evidence by materialization storage id, least recently used out first.

    Entries never go stale: a storage id names one immutable event, and the storage-id lookup
    done on every request decides which event is current. ~200 bytes an entry; the default
    holds 50,000 tenant-hours (about 2,000 tenant-days) in about 10 MB.
    """

    def __init__(self, max_entries: int = 50_000) -> None:
        self._entries: OrderedDict[int, ArchiveEvidence] = OrderedDict()
        self._max = max_entries
        self._lock = threading.Lock()

    def get_many(self, storage_ids: Iterable[int]) -> dict[int, ArchiveEvidence]:
        found: dict[int, ArchiveEvidence] = {}
        with self._lock:
            for storage_id in storage_ids:
                evidence = self._entries.get(storage_id)
                if evidence is not None:
                    self._entries.move_to_end(storage_id)
                    found[storage_id] = evidence
        return found

    def put(self, storage_id: int, evidence: ArchiveEvidence) -> None:
        with self._lock:
            self._entries[storage_id] = evidence
            self._entries.move_to_end(storage_id)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


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
    """
    today = (now or datetime.now(UTC)).date()
    hours = day_hours(day)
    if not is_kept(day, retention_days, today):
        return [HourStatus(hour, "expired") for hour in hours]
    deleted = deleted or {}
    keys = {archive_partition_key(tenant_id, hour): hour for hour in hours}
    latest = instance.get_latest_storage_id_by_partition(
        ARCHIVE_ASSET_KEY, dg.DagsterEventType.ASSET_MATERIALIZATION, set(keys)
    )
    known = cache.get_many(latest.values()) if cache is not None else {}
    unknown = [storage_id for storage_id in latest.values() if storage_id not in known]
    if unknown:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=ARCHIVE_ASSET_KEY, storage_ids=unknown),
            limit=len(unknown),
        ).records
        for record in records:
            materialization = record.asset_materialization
            if materialization is None:
                continue
            evidence = ArchiveEvidence.from_metadata(
                {name: value.value for name, value in materialization.metadata.items()},
                record.timestamp,
            )
            known[record.storage_id] = evidence
            if cache is not None:
                cache.put(record.storage_id, evidence)
    evidence_by_key = {
        key: known[storage_id] for key, storage_id in latest.items() if storage_id in known
    }
    missing = set(keys) - set(evidence_by_key)
    failed_keys = _failed_partitions(instance, missing) if missing else set()
    statuses = []
    for key, hour in keys.items():
        evidence = evidence_by_key.get(key)
        deleted_at = deleted.get(hour)
        if deleted_at is not None and (
            evidence is None or evidence.materialized_at <= deleted_at.timestamp()
        ):
            statuses.append(HourStatus(hour, "expired"))
        elif evidence is not None:
            statuses.append(HourStatus(hour, "available", evidence))
        else:
            statuses.append(HourStatus(hour, "failed" if key in failed_keys else "pending"))
    return statuses


def _failed_partitions(instance: dg.DagsterInstance, partition_keys: set[str]) -> set[str]:
    """The partitions whose most recent planned run failed for good (no retry coming)."""
    planned = instance.get_latest_storage_id_by_partition(
        ARCHIVE_ASSET_KEY, dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED, partition_keys
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
