"""The day lookup against a Dagster instance: evidence per hour, the cache by storage id never
serves a replaced archive, and the cache stays within its bound."""

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from recordings.keys import archive_key, archive_partition_key, day_hours
from recordings_api.archives.services import (
    ARCHIVE_ASSET_KEY,
    ArchiveEvidence,
    EvidenceCache,
    day_statuses,
)
from tests.support import DAY


def _materialize(instance: dg.DagsterInstance, tenant: str, hour_index: int, sha: str) -> None:
    hour = day_hours(DAY)[hour_index]
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            ARCHIVE_ASSET_KEY,
            partition=archive_partition_key(tenant, hour),
            metadata={
                "object_key": archive_key(tenant, hour),
                "size_bytes": 100 + hour_index,
                "sha256": sha,
                "recording_count": 2,
                "conversation_count": 1,
                "failed_recording_count": 0,
            },
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


def test_the_cache_keeps_the_most_recently_used_within_its_bound() -> None:
    cache = EvidenceCache(max_entries=2)
    evidence = ArchiveEvidence("k", 1, "0" * 64, 0, 0, 0)
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
