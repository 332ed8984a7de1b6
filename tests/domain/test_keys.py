"""The key layout is a contract with storage and the API: pin it, and pin what it refuses."""

from collections import Counter
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from recordings.keys import (
    ARCHIVE_ASSET_NAME,
    SHARD_COUNT,
    InvalidIdentifierError,
    archive_key,
    archive_partition_key,
    day_hours,
    parse_archive_partition_key,
    shard_asset_path,
    shard_name,
    source_key,
    tenant_shard,
    tenants_by_shard,
    zip_entry_name,
)


def test_archive_key_follows_the_seed_layout_under_the_tenant_prefix() -> None:
    hour = datetime(2025, 12, 12, 7, 42, 13, tzinfo=UTC)
    assert archive_key("acme", hour) == (
        "tenants/acme/daily-conversation-audio-recordings/2025/12/12/07.zip"
    )


def test_archive_key_converts_other_time_zones_to_utc() -> None:
    local = datetime(2025, 12, 12, 1, 30, tzinfo=timezone(timedelta(hours=2)))
    assert archive_key("acme", local).endswith("2025/12/11/23.zip")


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        archive_key("acme", datetime(2025, 12, 12, 7))  # noqa: DTZ001 - the point of the test


@pytest.mark.parametrize("tenant", ["", "Acme", "a/b", "../x", "a|b", "-acme", "x" * 64])
def test_unsafe_tenant_ids_are_refused(tenant: str) -> None:
    with pytest.raises(InvalidIdentifierError, match="tenant id"):
        archive_key(tenant, datetime(2025, 12, 12, tzinfo=UTC))


@pytest.mark.parametrize("value", ["..", "a/b", "a\\b", "x..y", ".hidden", "a b"])
def test_unsafe_object_ids_are_refused(value: str) -> None:
    with pytest.raises(InvalidIdentifierError):
        zip_entry_name(value, "s1", "r1")


def test_zip_entry_and_source_layout() -> None:
    assert zip_entry_name("c1", "s1", "r1") == "c1/s1/r1.opus"
    assert source_key("acme", "c1", "s1", "r1", ".WAV") == "tenants/acme/conversations/c1/s1/r1.wav"


def test_partition_keys_sort_hour_first_and_round_trip() -> None:
    hour = datetime(2025, 12, 12, 13, tzinfo=UTC)
    key = archive_partition_key("acme", hour)
    assert key == "2025-12-12-13:00|acme"
    assert parse_archive_partition_key(key) == ("acme", hour)


def test_day_hours_are_the_24_utc_hours() -> None:
    hours = day_hours(date(2025, 12, 12))
    assert len(hours) == 24
    assert hours[0] == datetime(2025, 12, 12, tzinfo=UTC)
    assert hours[-1] == datetime(2025, 12, 12, 23, tzinfo=UTC)


def test_a_tenants_shard_is_pinned() -> None:
    # Stored materializations are found under the shard's asset key: the mapping never moves.
    assert SHARD_COUNT == 16
    assert {t: tenant_shard(t) for t in ("acme", "globex", "initech", "umbrella")} == {
        "acme": 13,
        "globex": 13,
        "initech": 2,
        "umbrella": 9,
    }


def test_tenants_spread_evenly_over_the_shards() -> None:
    counts = Counter(tenant_shard(f"tenant-{i:05d}") for i in range(10_000))
    assert set(counts) == set(range(SHARD_COUNT))
    expected = 10_000 / SHARD_COUNT
    assert all(abs(n - expected) <= 0.15 * expected for n in counts.values()), counts


def test_tenants_group_by_shard_in_their_order() -> None:
    assert tenants_by_shard(["globex", "initech", "acme"]) == {
        13: ["globex", "acme"],
        2: ["initech"],
    }


def test_shard_asset_paths_share_the_archive_prefix() -> None:
    assert shard_name(7) == "shard_07"
    assert shard_asset_path(7) == [ARCHIVE_ASSET_NAME, "shard_07"]
    with pytest.raises(ValueError, match="between 0 and 15"):
        shard_name(SHARD_COUNT)
