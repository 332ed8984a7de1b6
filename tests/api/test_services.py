"""The day lookup against a Dagster instance: evidence per hour, the cache by storage id never
serves a replaced archive, the cache stays within its bound, an hour whose evidence cannot be
read is failed (and logged), and the Dagster run tag the lookup relies on is still Dagster's."""

import logging
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from dagster._core.storage import tags as dagster_tags

from recordings.archive.evidence import ArchiveEvidence
from recordings.keys import archive_key, archive_partition_key, day_hours
from recordings_api.archives.services import WILL_RETRY_TAG, day_statuses
from recordings_instance.archives import (
    LEGACY_ARCHIVE_ASSET_KEY,
    EvidenceCache,
    RecordedEvidence,
    archive_asset_key,
)
from tests.support import DAY


def _materialize(
    instance: dg.DagsterInstance,
    tenant: str,
    hour_index: int,
    sha: str,
    asset_key: dg.AssetKey | None = None,
) -> None:
    hour = day_hours(DAY)[hour_index]
    evidence = ArchiveEvidence(
        object_key=archive_key(tenant, hour),
        size_bytes=100 + hour_index,
        sha256=sha,
        recording_count=2,
        conversation_count=1,
        failed_recording_count=0,
    )
    _report(instance, tenant, hour_index, evidence.to_metadata(), asset_key)


def _report(
    instance: dg.DagsterInstance,
    tenant: str,
    hour_index: int,
    metadata: dict[str, str | int],
    asset_key: dg.AssetKey | None = None,
) -> None:
    """A materialization of the tenant-hour, under the tenant's shard key by default."""
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            asset_key or archive_asset_key(tenant),
            partition=archive_partition_key(tenant, day_hours(DAY)[hour_index]),
            metadata=metadata,
        )
    )


def test_a_rebuilt_hour_is_never_served_from_the_cache(
    dagster_instance: dg.DagsterInstance,
) -> None:
    instance = dagster_instance
    cache = EvidenceCache()
    _materialize(instance, "acme", 3, "a" * 64)
    _materialize(instance, "globex", 3, "b" * 64)
    first = day_statuses(instance, "acme", DAY, 7, cache=cache)
    assert [s.status for s in first].count("available") == 1
    assert first[3].evidence is not None and first[3].evidence.sha256 == "a" * 64
    assert first[3].evidence.object_key == archive_key("acme", day_hours(DAY)[3])
    assert len(cache) == 1  # globex's evidence was not even read
    again = day_statuses(instance, "acme", DAY, 7, cache=cache)
    assert again == first
    _materialize(instance, "acme", 3, "c" * 64)  # the hour is rebuilt
    rebuilt = day_statuses(instance, "acme", DAY, 7, cache=cache)
    assert rebuilt[3].evidence is not None and rebuilt[3].evidence.sha256 == "c" * 64
    assert day_statuses(instance, "acme", DAY, 7) == rebuilt  # same as without a cache


def test_hours_archived_before_the_shards_are_served_until_rebuilt(
    dagster_instance: dg.DagsterInstance,
) -> None:
    """An upgrade keeps the archives made under the single asset of before available; an hour
    rebuilt since is served from its shard's asset."""
    instance = dagster_instance
    cache = EvidenceCache()
    for index in (3, 4):
        _materialize(instance, "acme", index, str(index) * 64, LEGACY_ARCHIVE_ASSET_KEY)
    _materialize(instance, "acme", 4, "c" * 64)  # rebuilt after the upgrade
    statuses = day_statuses(instance, "acme", DAY, 7, cache=cache)
    assert [s.status for s in statuses].count("available") == 2
    assert statuses[3].evidence is not None and statuses[3].evidence.sha256 == "3" * 64
    assert statuses[4].evidence is not None and statuses[4].evidence.sha256 == "c" * 64
    assert day_statuses(instance, "acme", DAY, 7, cache=cache) == statuses


def test_the_cache_keeps_the_most_recently_used_within_its_bound() -> None:
    cache = EvidenceCache(max_entries=2)
    evidence = RecordedEvidence(ArchiveEvidence("k", 1, "0" * 64, 0, 0, 0), materialized_at=0.0)
    for storage_id in (1, 2):
        cache.put(storage_id, evidence)
    assert set(cache.get_many([1])) == {1}  # 1 is now the most recent
    cache.put(3, evidence)
    assert set(cache.get_many([1, 2, 3])) == {1, 3}
    assert len(cache) == 2


@pytest.mark.parametrize(("age_days", "retention", "expired"), [(1, 1, False), (2, 1, True)])
def test_days_beyond_retention_are_expired_without_a_lookup(
    dagster_instance: dg.DagsterInstance, age_days: int, retention: int, expired: bool
) -> None:
    today = DAY + timedelta(days=1)
    day = today - timedelta(days=age_days)
    now = datetime(today.year, today.month, today.day, 12, tzinfo=UTC)
    statuses = day_statuses(dagster_instance, "acme", day, retention, now)
    assert ({s.status for s in statuses} == {"expired"}) == expired


def test_an_hour_whose_evidence_cannot_be_read_is_failed_and_logged(
    dagster_instance: dg.DagsterInstance, caplog: pytest.LogCaptureFixture
) -> None:
    _materialize(dagster_instance, "acme", 3, "a" * 64)
    # An event of another shape: no SHA-256, so no link a client could check.
    _report(dagster_instance, "acme", 5, {"object_key": "k", "size_bytes": 9})
    cache = EvidenceCache()
    with caplog.at_level(logging.ERROR, logger="recordings_api.archives.services"):
        statuses = day_statuses(dagster_instance, "acme", DAY, 7, cache=cache)
    assert statuses[5].status == "failed" and statuses[5].evidence is None
    assert statuses[3].status == "available"
    assert {s.status for i, s in enumerate(statuses) if i not in (3, 5)} == {"pending"}
    # Only this module's records: the instance's lazy storage set-up may log too (alembic).
    (logged,) = [r for r in caplog.records if r.name == "recordings_api.archives.services"]
    assert archive_partition_key("acme", day_hours(DAY)[5]) in logged.getMessage()
    assert "'sha256' is missing" in logged.getMessage()
    assert len(cache) == 1  # only the readable evidence is kept
    # Deleted by retention afterwards: expired like any deleted hour.
    deleted = {day_hours(DAY)[5]: datetime.now(UTC) + timedelta(seconds=1)}
    assert day_statuses(dagster_instance, "acme", DAY, 7, deleted=deleted)[5].status == "expired"


def test_the_will_retry_tag_is_dagsters() -> None:
    # Dagster exports no public name for it; an upgrade that renames it must fail here.
    assert dagster_tags.WILL_RETRY_TAG == WILL_RETRY_TAG
