"""The archive assets in a Dagster instance: their keys, each partition's latest materialization,
and the evidence it recorded (`recordings.archive.evidence`).

The archive is one asset per shard of tenants (`recordings.keys.tenant_shard`), so a lookup
groups its partitions by their tenant's shard and reads each shard's asset. Finding the latest
materialization of a set of partitions takes two indexed reads per shard touched (a tenant's day
touches one) whatever the size of the asset's history: the latest storage id per partition, then
those records. Reading a record means deserializing the whole event (the metadata the UI shows,
failure tables and all), which is most of the cost, and a materialization never changes once
written: a rebuilt hour gets a new storage id. So `latest_evidence` keeps what it read in an
`EvidenceCache` by storage id, and a repeated lookup only pays for the storage-id read, which it
cannot skip (it is what notices a new or rebuilt archive).

Archives made before the archive was sharded were recorded under `LEGACY_ARCHIVE_ASSET_KEY`; a
partition with nothing under its shard's key is looked up there too, so they stay downloadable,
checkable and deletable until they expire.
"""

import threading
from collections import OrderedDict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

import dagster as dg

from recordings.archive.evidence import SHA256, ArchiveEvidence, EvidenceError, optional_value
from recordings.keys import (
    ARCHIVE_ASSET_NAME,
    parse_archive_partition_key,
    shard_asset_path,
    tenant_shard,
)

LEGACY_ARCHIVE_ASSET_KEY = dg.AssetKey(ARCHIVE_ASSET_NAME)
"""The single archive asset's key before the archive was split into shards. Nothing records
under it any more; lookups still read it for partitions their shard has no record of. It (and
its reads) can go once every deployment has run 8 days (the longest retention plus one) on the
sharded code: by then each of its archives has expired."""

INSTANCE_ENVIRONMENT = {"DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "true"}
"""What every process that creates runs on the instance must have in its environment (the
daemon, the webserver, the code server and its runs, the CLI): a run plans its partitions in
one event instead of one per partition. A night of 10,000 tenants is 240,000 partitions; at one
event each, submitting it took most of an hour. Dagster then no longer marks a failed run's
partitions failed itself; `recordings.failures` records them instead (and the API reads them
there), so nothing depends on the per-partition events if a process runs without it."""


def shard_asset_key(shard: int) -> dg.AssetKey:
    """The key of the archive asset of `shard` (`hourly_conversation_audio_archive/shard_07`)."""
    return dg.AssetKey(shard_asset_path(shard))


def archive_asset_key(tenant_id: str) -> dg.AssetKey:
    """The key of the archive asset that holds `tenant_id`'s hours."""
    return shard_asset_key(tenant_shard(tenant_id))


def _by_asset_key(partition_keys: Iterable[str]) -> dict[dg.AssetKey, set[str]]:
    """Archive partition keys grouped by the asset of their tenant's shard."""
    grouped: dict[dg.AssetKey, set[str]] = {}
    for key in partition_keys:
        tenant_id, _ = parse_archive_partition_key(key)
        grouped.setdefault(archive_asset_key(tenant_id), set()).add(key)
    return grouped


def latest_storage_ids(
    instance: dg.DagsterInstance,
    partition_keys: Iterable[str],
    event_type: dg.DagsterEventType = dg.DagsterEventType.ASSET_MATERIALIZATION,
) -> dict[dg.AssetKey, dict[str, int]]:
    """The storage id of each partition's latest archive event of `event_type`, for the
    partitions that have one, by the asset it was recorded under: the tenant's shard, or
    `LEGACY_ARCHIVE_ASSET_KEY` for a partition its shard has none of (one indexed read per
    shard touched, and one for the legacy key if a partition was not found)."""
    found: dict[dg.AssetKey, dict[str, int]] = {}
    not_found: set[str] = set()
    for asset_key, keys in _by_asset_key(partition_keys).items():
        latest = instance.get_latest_storage_id_by_partition(asset_key, event_type, keys)
        if latest:
            found[asset_key] = dict(latest)
        not_found |= keys - latest.keys()
    if not_found:
        legacy = instance.get_latest_storage_id_by_partition(
            LEGACY_ARCHIVE_ASSET_KEY, event_type, not_found
        )
        if legacy:
            found[LEGACY_ARCHIVE_ASSET_KEY] = dict(legacy)
    return found


def materialization_records(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, storage_ids: Collection[int]
) -> list[dg.EventLogRecord]:
    """The materializations of `asset_key` with these storage ids (one indexed read)."""
    if not storage_ids:
        return []
    return list(
        instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=asset_key, storage_ids=list(storage_ids)),
            limit=len(storage_ids),
        ).records
    )


def latest_archive_records(
    instance: dg.DagsterInstance, partition_keys: Iterable[str]
) -> dict[str, dg.EventLogRecord]:
    """The latest materialization record of each partition that has one (two indexed reads
    per shard touched, whatever the size of the assets' history)."""
    found: dict[str, dg.EventLogRecord] = {}
    for asset_key, latest in latest_storage_ids(instance, partition_keys).items():
        for record in materialization_records(instance, asset_key, list(latest.values())):
            if record.partition_key:
                found[record.partition_key] = record
    return found


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
    """`recorded_sha256` of many partitions in two reads per shard (what retention asks for a
    batch of hours): the partitions with a recorded SHA-256, and those whose recorded value is
    not text with the `EvidenceError` saying so."""
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
    latest = {
        (asset_key, key): storage_id
        for asset_key, by_key in latest_storage_ids(instance, partition_keys).items()
        for key, storage_id in by_key.items()
    }
    known = cache.get_many(latest.values()) if cache is not None else {}
    unreadable: dict[int, EvidenceError] = {}
    for asset_key, by_key in _unknown_by_asset_key(latest, known).items():
        for record in materialization_records(instance, asset_key, by_key):
            try:
                evidence = ArchiveEvidence.from_metadata(record_metadata(record))
            except EvidenceError as error:
                unreadable[record.storage_id] = error
                continue
            known[record.storage_id] = RecordedEvidence(evidence, record.timestamp)
            if cache is not None:
                cache.put(record.storage_id, known[record.storage_id])
    found: dict[str, RecordedEvidence | EvidenceError] = {}
    for (_, key), storage_id in latest.items():
        if storage_id in known:
            found[key] = known[storage_id]
        elif storage_id in unreadable:
            found[key] = unreadable[storage_id]
    return found


def _unknown_by_asset_key(
    latest: Mapping[tuple[dg.AssetKey, str], int], known: Mapping[int, RecordedEvidence]
) -> dict[dg.AssetKey, list[int]]:
    """The storage ids not in `known`, by the asset they were recorded under."""
    unknown: dict[dg.AssetKey, list[int]] = {}
    for (asset_key, _), storage_id in latest.items():
        if storage_id not in known:
            unknown.setdefault(asset_key, []).append(storage_id)
    return unknown
