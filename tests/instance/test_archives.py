"""Reading the archive assets from a Dagster instance, as both apps do: the latest
materialization of each partition, the SHA-256 it recorded, and its evidence (a malformed
event is reported as such, not as an empty archive), under each tenant's shard key, and under
the single key of before the shards for what was archived then."""

import dagster as dg

from recordings.archive.evidence import ArchiveEvidence, EvidenceError
from recordings.keys import tenant_shard
from recordings_instance.archives import (
    LEGACY_ARCHIVE_ASSET_KEY,
    EvidenceCache,
    RecordedEvidence,
    archive_asset_key,
    latest_archive_records,
    latest_evidence,
    recorded_sha256,
    recorded_sha256s,
    shard_asset_key,
)

HOUR_03 = "2026-03-20-03:00|acme"
HOUR_04 = "2026-03-20-04:00|acme"


def _evidence(sha: str) -> ArchiveEvidence:
    return ArchiveEvidence("tenants/acme/x.zip", 10, sha, 1, 1, 0)


def _report(
    instance: dg.DagsterInstance,
    partition: str,
    metadata: dict[str, str | int],
    asset_key: dg.AssetKey | None = None,
) -> None:
    """Record a materialization of `partition`, by default under its tenant's shard key."""
    tenant_id = partition.split("|")[1]
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            asset_key or archive_asset_key(tenant_id), partition=partition, metadata=metadata
        )
    )


def test_the_latest_materialization_of_each_partition_is_read(
    dagster_instance: dg.DagsterInstance,
) -> None:
    for sha in ("a" * 64, "b" * 64):
        _report(dagster_instance, HOUR_03, _evidence(sha).to_metadata())
    records = latest_archive_records(dagster_instance, [HOUR_03, HOUR_04])
    assert list(records) == [HOUR_03]
    assert recorded_sha256(dagster_instance, HOUR_03) == "b" * 64
    assert recorded_sha256(dagster_instance, HOUR_04) is None  # never materialized


def test_an_event_without_evidence_is_an_error_and_stays_out_of_the_cache(
    dagster_instance: dg.DagsterInstance,
) -> None:
    _report(dagster_instance, HOUR_03, _evidence("a" * 64).to_metadata())
    _report(dagster_instance, HOUR_04, {"object_key": "tenants/acme/y.zip"})
    cache = EvidenceCache()
    found = latest_evidence(dagster_instance, [HOUR_03, HOUR_04], cache)
    readable = found[HOUR_03]
    assert isinstance(readable, RecordedEvidence) and readable.evidence == _evidence("a" * 64)
    unreadable = found[HOUR_04]
    assert isinstance(unreadable, EvidenceError) and unreadable.key == "size_bytes"
    assert len(cache) == 1
    assert recorded_sha256(dagster_instance, HOUR_04) is None  # it recorded none
    again = latest_evidence(dagster_instance, [HOUR_03, HOUR_04], cache)
    assert again[HOUR_03] == readable and isinstance(again[HOUR_04], EvidenceError)


def test_recorded_sha256s_reads_many_partitions_and_names_an_unreadable_one(
    dagster_instance: dg.DagsterInstance,
) -> None:
    hour_05 = "2026-03-20-05:00|acme"
    _report(dagster_instance, HOUR_03, _evidence("a" * 64).to_metadata())
    _report(dagster_instance, HOUR_04, {"object_key": "tenants/acme/y.zip"})  # no SHA-256
    _report(dagster_instance, hour_05, {"sha256": 5})
    found = recorded_sha256s(dagster_instance, [HOUR_03, HOUR_04, hour_05, "2026-03-20-06:00|acme"])
    assert set(found) == {HOUR_03, hour_05}
    assert found[HOUR_03] == "a" * 64
    unreadable = found[hour_05]
    assert isinstance(unreadable, EvidenceError) and unreadable.key == "sha256"


def test_each_tenant_is_read_under_its_own_shard_key(
    dagster_instance: dg.DagsterInstance,
) -> None:
    assert tenant_shard("acme") != tenant_shard("initech")
    assert archive_asset_key("acme") == shard_asset_key(tenant_shard("acme"))
    assert archive_asset_key("acme").path == ["hourly_conversation_audio_archive", "shard_13"]
    initech_03 = "2026-03-20-03:00|initech"
    _report(dagster_instance, HOUR_03, _evidence("a" * 64).to_metadata())
    _report(dagster_instance, initech_03, _evidence("b" * 64).to_metadata())
    # A materialization under another shard's key is not the tenant's.
    _report(dagster_instance, HOUR_04, _evidence("c" * 64).to_metadata(), shard_asset_key(2))
    found = recorded_sha256s(dagster_instance, [HOUR_03, HOUR_04, initech_03])
    assert found == {HOUR_03: "a" * 64, initech_03: "b" * 64}
    records = latest_archive_records(dagster_instance, [HOUR_03, initech_03])
    assert records[initech_03].asset_key == archive_asset_key("initech")


def test_archives_recorded_before_the_shards_are_still_found(
    dagster_instance: dg.DagsterInstance,
) -> None:
    """An upgrade keeps what was archived under the single asset of before readable (download,
    checks, retention) until it expires; a rebuild under the shard key takes over."""
    legacy = LEGACY_ARCHIVE_ASSET_KEY
    assert legacy == dg.AssetKey("hourly_conversation_audio_archive")
    _report(dagster_instance, HOUR_03, _evidence("a" * 64).to_metadata(), legacy)
    _report(dagster_instance, HOUR_04, _evidence("b" * 64).to_metadata(), legacy)
    _report(dagster_instance, HOUR_04, _evidence("c" * 64).to_metadata())  # rebuilt since
    assert recorded_sha256(dagster_instance, HOUR_03) == "a" * 64
    assert recorded_sha256s(dagster_instance, [HOUR_03, HOUR_04]) == {
        HOUR_03: "a" * 64,
        HOUR_04: "c" * 64,
    }
    records = latest_archive_records(dagster_instance, [HOUR_03, HOUR_04])
    assert records[HOUR_03].asset_key == legacy
    assert records[HOUR_04].asset_key == archive_asset_key("acme")
    cache = EvidenceCache()
    for _ in range(2):  # read, then from the cache
        found = latest_evidence(dagster_instance, [HOUR_03, HOUR_04], cache)
        old, rebuilt = found[HOUR_03], found[HOUR_04]
        assert isinstance(old, RecordedEvidence) and old.evidence == _evidence("a" * 64)
        assert isinstance(rebuilt, RecordedEvidence) and rebuilt.evidence == _evidence("c" * 64)
    assert len(cache) == 2
