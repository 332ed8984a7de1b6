"""Reading the archive asset from a Dagster instance, as both apps do: the latest
materialization of each partition, the SHA-256 it recorded, and its evidence (a malformed
event is reported as such, not as an empty archive)."""

import dagster as dg

from recordings.archive.evidence import ArchiveEvidence, EvidenceError
from recordings_instance.archives import (
    ARCHIVE_ASSET_KEY,
    EvidenceCache,
    RecordedEvidence,
    latest_archive_records,
    latest_evidence,
    recorded_sha256,
    recorded_sha256s,
)

HOUR_03 = "2026-03-20-03:00|acme"
HOUR_04 = "2026-03-20-04:00|acme"


def _evidence(sha: str) -> ArchiveEvidence:
    return ArchiveEvidence("tenants/acme/x.zip", 10, sha, 1, 1, 0)


def _report(instance: dg.DagsterInstance, partition: str, metadata: dict[str, str | int]) -> None:
    instance.report_runless_asset_event(
        dg.AssetMaterialization(ARCHIVE_ASSET_KEY, partition=partition, metadata=metadata)
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
