"""The archive asset in a Dagster instance: its key, each partition's latest materialization,
and the evidence it recorded (`recordings.archive.evidence`).

Finding the latest materialization of a set of partitions takes two indexed reads whatever the
size of the asset's history: the latest storage id per partition, then those records. Reading a
record means deserializing the whole event (the metadata the UI shows, failure tables and all),
which is most of the cost, and a materialization never changes once written: a rebuilt hour gets
a new storage id. So `latest_evidence` keeps what it read in an `EvidenceCache` by storage id,
and a repeated lookup only pays for the storage-id read, which it cannot skip (it is what
notices a new or rebuilt archive).
"""

import threading
from collections import OrderedDict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

import dagster as dg

from recordings.archive.evidence import SHA256, ArchiveEvidence, EvidenceError, optional_value
from recordings.keys import ARCHIVE_ASSET_NAME

ARCHIVE_ASSET_KEY = dg.AssetKey(ARCHIVE_ASSET_NAME)

INSTANCE_ENVIRONMENT = {"DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "true"}
"""What every process that creates runs on the instance must have in its environment (the
daemon, the webserver, the code server and its runs, the CLI): a run plans its partitions in
one event instead of one per partition. A night of 10,000 tenants is 240,000 partitions; at one
event each, submitting it took most of an hour. Dagster then no longer marks a failed run's
partitions failed itself; `recordings.failures` records them instead (and the API reads them
there), so nothing depends on the per-partition events if a process runs without it."""


def latest_storage_ids(
    instance: dg.DagsterInstance,
    partition_keys: Iterable[str],
    event_type: dg.DagsterEventType = dg.DagsterEventType.ASSET_MATERIALIZATION,
) -> Mapping[str, int]:
    """The storage id of each partition's latest archive event of `event_type`, for the
    partitions that have one (one indexed read)."""
    return instance.get_latest_storage_id_by_partition(
        ARCHIVE_ASSET_KEY, event_type, set(partition_keys)
    )


def materialization_records(
    instance: dg.DagsterInstance, storage_ids: Collection[int]
) -> list[dg.EventLogRecord]:
    """The archive materializations with these storage ids (one indexed read)."""
    if not storage_ids:
        return []
    return list(
        instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=ARCHIVE_ASSET_KEY, storage_ids=list(storage_ids)),
            limit=len(storage_ids),
        ).records
    )


def latest_archive_records(
    instance: dg.DagsterInstance, partition_keys: Iterable[str]
) -> dict[str, dg.EventLogRecord]:
    """The latest materialization record of each partition that has one (two indexed reads,
    whatever the size of the asset's history)."""
    latest = latest_storage_ids(instance, partition_keys)
    records = materialization_records(instance, list(latest.values()))
    return {record.partition_key: record for record in records if record.partition_key}


def record_metadata(record: dg.EventLogRecord) -> dict[str, object]:
    """A materialization record's metadata as plain values (text, numbers, JSON)."""
    materialization = record.asset_materialization
    if materialization is None:
        return {}
    return {name: value.value for name, value in materialization.metadata.items()}


def recorded_sha256(instance: dg.DagsterInstance, partition_key: str) -> str | None:
    """The SHA-256 the partition's latest materialization recorded; None when it has none (or
    its event, reported by hand, recorded none). A SHA-256 that is not text raises
    `EvidenceError`."""
    record = latest_archive_records(instance, [partition_key]).get(partition_key)
    return optional_value(record_metadata(record), SHA256, str) if record else None


def recorded_sha256s(
    instance: dg.DagsterInstance, partition_keys: Iterable[str]
) -> dict[str, str | EvidenceError]:
    """`recorded_sha256` of many partitions in two reads (what retention asks for a batch of
    hours): the partitions with a recorded SHA-256, and those whose recorded value is not text
    with the `EvidenceError` saying so."""
    found: dict[str, str | EvidenceError] = {}
    for key, record in latest_archive_records(instance, partition_keys).items():
        try:
            sha256 = optional_value(record_metadata(record), SHA256, str)
        except EvidenceError as error:
            found[key] = error
            continue
        if sha256 is not None:
            found[key] = sha256
    return found


@dataclass(frozen=True, slots=True)
class RecordedEvidence:
    """An archive's evidence and when its materialization was recorded."""

    evidence: ArchiveEvidence
    materialized_at: float  # the materialization's timestamp (epoch seconds)


class EvidenceCache:
    """Archive evidence by materialization storage id, least recently used out first.

    Entries never go stale: a storage id names one immutable event, and the storage-id lookup
    done on every request decides which event is current. ~200 bytes an entry; the default
    holds 50,000 tenant-hours (about 2,000 tenant-days) in about 10 MB.
    """

    def __init__(self, max_entries: int = 50_000) -> None:
        self._entries: OrderedDict[int, RecordedEvidence] = OrderedDict()
        self._max = max_entries
        self._lock = threading.Lock()

    def get_many(self, storage_ids: Iterable[int]) -> dict[int, RecordedEvidence]:
        found: dict[int, RecordedEvidence] = {}
        with self._lock:
            for storage_id in storage_ids:
                evidence = self._entries.get(storage_id)
                if evidence is not None:
                    self._entries.move_to_end(storage_id)
                    found[storage_id] = evidence
        return found

    def put(self, storage_id: int, evidence: RecordedEvidence) -> None:
        with self._lock:
            self._entries[storage_id] = evidence
            self._entries.move_to_end(storage_id)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


def latest_evidence(
    instance: dg.DagsterInstance,
    partition_keys: Iterable[str],
    cache: EvidenceCache | None = None,
) -> dict[str, RecordedEvidence | EvidenceError]:
    """The evidence of each partition's latest materialization, for the partitions that have
    one; reads only the records `cache` does not hold yet, and adds them to it.

    A materialization whose metadata is not evidence (an event reported by hand, or written by
    a pipeline of another shape) maps to the `EvidenceError` that names the faulty key, and is
    not cached: the caller decides what such an hour is.
    """
    latest = latest_storage_ids(instance, partition_keys)
    known = cache.get_many(latest.values()) if cache is not None else {}
    unknown = [storage_id for storage_id in latest.values() if storage_id not in known]
    unreadable: dict[int, EvidenceError] = {}
    for record in materialization_records(instance, unknown):
        try:
            evidence = ArchiveEvidence.from_metadata(record_metadata(record))
        except EvidenceError as error:
            unreadable[record.storage_id] = error
            continue
        known[record.storage_id] = RecordedEvidence(evidence, record.timestamp)
        if cache is not None:
            cache.put(record.storage_id, known[record.storage_id])
    found: dict[str, RecordedEvidence | EvidenceError] = {}
    for key, storage_id in latest.items():
        if storage_id in known:
            found[key] = known[storage_id]
        elif storage_id in unreadable:
            found[key] = unreadable[storage_id]
    return found
