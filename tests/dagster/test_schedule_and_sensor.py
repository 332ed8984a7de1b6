"""The nightly schedules' run requests for a given tick, and the tenant partitions sensor.

Both read the real application database; the Dagster instance is a real (temporary) one, so
dynamic partitions are really registered. acme and globex share a shard (13), initech is in
another (2): each shard's schedule and partitions hold only their own tenants.
"""

from datetime import UTC, datetime

import dagster as dg
import pytest
import sqlalchemy as sa

from recordings.catalog import ensure_tenant, register_recording, set_recording_settings
from recordings.db.engine import session_scope
from recordings.db.models import Tenant, TenantRecordingSettings
from recordings.keys import SHARD_COUNT, tenant_shard
from recordings_dagster.partitions import tenant_partitions_name
from recordings_dagster.resources import ArchiveBuildResource, DatabaseResource
from recordings_dagster.schedules import NIGHTLY_ARCHIVES_SCHEDULES
from recordings_dagster.sensors import tenant_partitions_sensor
from tests.support import tenants_of_shard

TICK = datetime(2025, 12, 13, 0, 30, tzinfo=UTC)
ACME_SHARD = tenant_shard("acme")
ACME_TENANTS = tenant_partitions_name(ACME_SHARD)  # globex's too


@pytest.fixture
def tenants(engine: sa.Engine) -> None:
    with session_scope(engine) as session:
        for tenant_id, enabled in (("acme", True), ("globex", True), ("initech", False)):
            ensure_tenant(session, tenant_id)
            set_recording_settings(session, tenant_id, changed_by="test", enabled=enabled)


def _shard_schedule_result(
    instance: dg.DagsterInstance,
    database_url: str,
    shard: int,
    archive_build: ArchiveBuildResource | None = None,
) -> object:
    """What the nightly schedule of `shard` returns for TICK."""
    with dg.build_schedule_context(
        instance=instance,
        scheduled_execution_time=TICK,
        resources={
            "database": DatabaseResource(url=database_url),
            "archive_build": archive_build or ArchiveBuildResource(),
        },
    ) as context:
        return NIGHTLY_ARCHIVES_SCHEDULES[shard](context)


def _schedule_requests(
    instance: dg.DagsterInstance,
    database_url: str,
    archive_build: ArchiveBuildResource | None = None,
) -> list[dg.RunRequest] | dg.SkipReason:
    """The night's requests of every shard's schedule; when all of them skip, the first
    skip reason."""
    requests: list[dg.RunRequest] = []
    skipped: list[dg.SkipReason] = []
    for shard in range(SHARD_COUNT):
        result = _shard_schedule_result(instance, database_url, shard, archive_build)
        if isinstance(result, dg.SkipReason):
            skipped.append(result)
        else:
            assert isinstance(result, list)
            requests += result
    return requests if requests else skipped[0]


def _register_audio(engine: sa.Engine, tenant_id: str, seconds: float) -> None:
    """One recording of `seconds` on the scheduled day (registered only: the schedule reads
    durations, not audio)."""
    with session_scope(engine) as session:
        register_recording(
            session,
            tenant_id=tenant_id,
            conversation_id=f"c-{tenant_id}",
            session_id=f"s-{tenant_id}",
            recording_id=f"r-{tenant_id}",
            bucket="sources",
            object_key=f"{tenant_id}/r.wav",
            started_at=datetime(2025, 12, 12, 9, 15, tzinfo=UTC),
            duration_seconds=seconds,
            audio_format="wav",
            channels=1,
        )


def test_schedule_packs_the_enabled_tenants_of_yesterday_into_one_ranged_run(
    instance: dg.DagsterInstance, database_url: str, tenants: None
) -> None:
    requests = _schedule_requests(instance, database_url)
    assert isinstance(requests, list)
    (pack,) = requests  # initech is disabled
    assert pack.tags["dagster/asset_partition_range_start"] == "2025-12-12-00:00|acme"
    assert pack.tags["dagster/asset_partition_range_end"] == "2025-12-12-23:00|globex"
    assert pack.tags["recordings/tenant_count"] == "2"
    assert "recordings/tenant" not in pack.tags
    assert pack.run_key == "2025-12-12|acme..globex"
    assert pack.job_name == f"hourly_archives_shard_{ACME_SHARD:02d}"
    # The schedule registers tenants the sensor has not seen yet, so the range is valid; the
    # range is the rectangle of the tenants between the two ends, in partition order.
    assert instance.get_dynamic_partitions(ACME_TENANTS) == ["acme", "globex"]


def test_each_shards_schedule_requests_only_its_tenants_on_its_job(
    instance: dg.DagsterInstance, database_url: str, engine: sa.Engine, tenants: None
) -> None:
    with session_scope(engine) as session:
        set_recording_settings(session, "initech", changed_by="test", enabled=True)
    initech_shard = tenant_shard("initech")
    acme_requests = _shard_schedule_result(instance, database_url, ACME_SHARD)
    initech_requests = _shard_schedule_result(instance, database_url, initech_shard)
    assert isinstance(acme_requests, list) and isinstance(initech_requests, list)
    (acme_pack,), (initech_run,) = acme_requests, initech_requests
    assert acme_pack.tags["recordings/tenant_count"] == "2"
    assert initech_run.tags["recordings/tenant"] == "initech"
    assert initech_run.job_name == f"hourly_archives_shard_{initech_shard:02d}"
    assert instance.get_dynamic_partitions(tenant_partitions_name(initech_shard)) == ["initech"]
    other = next(s for s in range(SHARD_COUNT) if s not in {ACME_SHARD, initech_shard})
    skipped = _shard_schedule_result(instance, database_url, other)
    assert isinstance(skipped, dg.SkipReason)
    assert f"no tenant of shard_{other:02d}" in (skipped.skip_message or "")


def test_a_run_of_one_tenant_carries_the_tenant_tag_for_the_per_tenant_limit(
    instance: dg.DagsterInstance, database_url: str, tenants: None
) -> None:
    requests = _schedule_requests(
        instance, database_url, ArchiveBuildResource(max_tenants_per_run=1)
    )
    assert isinstance(requests, list)
    by_tenant = {r.tags["recordings/tenant"]: r for r in requests}
    assert sorted(by_tenant) == ["acme", "globex"]
    acme = by_tenant["acme"]
    assert acme.tags["dagster/asset_partition_range_start"] == "2025-12-12-00:00|acme"
    assert acme.tags["dagster/asset_partition_range_end"] == "2025-12-12-23:00|acme"
    assert acme.run_key == "2025-12-12|acme"


def test_a_heavy_tenant_gets_its_own_run_and_the_pack_steps_over_it_and_a_disabled_one(
    instance: dg.DagsterInstance, database_url: str, engine: sa.Engine
) -> None:
    # Ids of one shard: a pack never spans shards.
    names = ["a-small-7", "b-heavy-1", "c-small-23", "d-off-10", "e-small-18", "f-small-8"]
    assert {tenant_shard(name) for name in names} == {ACME_SHARD}
    instance.add_dynamic_partitions(ACME_TENANTS, names)
    with session_scope(engine) as session:
        for tenant_id in names:
            ensure_tenant(session, tenant_id)
            set_recording_settings(
                session, tenant_id, changed_by="test", enabled=tenant_id != "d-off-10"
            )
    _register_audio(engine, "a-small-7", 600)
    _register_audio(engine, "b-heavy-1", 7200)
    _register_audio(engine, "c-small-23", 60)
    requests = _schedule_requests(
        instance, database_url, ArchiveBuildResource(max_audio_seconds_per_run=3600)
    )
    assert isinstance(requests, list)
    runs = [
        (
            r.tags["recordings/first_tenant"],
            r.tags["recordings/last_tenant"],
            r.tags.get("recordings/tenant"),
            r.tags.get("recordings/stepped_over"),
        )
        for r in requests
    ]
    assert runs == [
        ("b-heavy-1", "b-heavy-1", "b-heavy-1", None),
        ("a-small-7", "f-small-8", None, "b-heavy-1,d-off-10"),
    ]
    assert requests[1].tags["recordings/tenant_count"] == "4"


def test_an_invalid_tenant_row_costs_only_itself_its_night(
    instance: dg.DagsterInstance, database_url: str, engine: sa.Engine, tenants: None
) -> None:
    """A tenant row written behind our back with an id that cannot be a partition key (here
    with the multi-partition separator and a path) gets no run, and the others still do."""
    with session_scope(engine) as session:
        for bad in ("evil|2025-12-12-00:00", "../globex"):
            session.add(Tenant(id=bad, name=bad))
            session.flush()
            session.add(
                TenantRecordingSettings(
                    tenant_id=bad, enabled=True, retention_days=7, updated_by="platform"
                )
            )
    requests = _schedule_requests(instance, database_url)
    assert isinstance(requests, list)
    assert [
        (r.tags["recordings/first_tenant"], r.tags["recordings/last_tenant"]) for r in requests
    ] == [("acme", "globex")]
    assert sorted(instance.get_dynamic_partitions(ACME_TENANTS)) == ["acme", "globex"]
    with dg.build_sensor_context(
        instance=instance, resources={"database": DatabaseResource(url=database_url)}
    ) as context:
        tenant_partitions_sensor(context)
    assert sorted(instance.get_dynamic_partitions(ACME_TENANTS)) == ["acme", "globex"]


def test_schedule_skips_when_no_tenant_is_enabled(
    instance: dg.DagsterInstance, database_url: str
) -> None:
    result = _schedule_requests(instance, database_url)
    assert isinstance(result, dg.SkipReason)
    assert "no tenant" in (result.skip_message or "")


def test_schedule_tick_covers_every_enabled_tenant_at_scale(
    instance: dg.DagsterInstance, database_url: str, engine: sa.Engine
) -> None:
    # 450 tenants of one shard, so that its schedule has 300 enabled tenant-days to pack.
    names = tenants_of_shard(ACME_SHARD, 450)
    enabled = {name for index, name in enumerate(names) if index % 3 != 0}
    with session_scope(engine) as session:
        for name in names:
            ensure_tenant(session, name)
            set_recording_settings(session, name, changed_by="test", enabled=name in enabled)
    requests = _schedule_requests(instance, database_url)
    assert isinstance(requests, list)
    # Every enabled tenant in exactly one run, at most 200 (the default) to a run; tenants
    # never enabled are not partitions, so they split nothing.
    order = instance.get_dynamic_partitions(ACME_TENANTS)
    sizes = []
    covered = []
    for request in requests:
        first = order.index(request.tags["recordings/first_tenant"])
        last = order.index(request.tags["recordings/last_tenant"])
        covered += order[first : last + 1]
        sizes.append(int(request.tags["recordings/tenant_count"]))
    assert sizes == [200, 100]
    assert len(covered) == 300 and len(set(covered)) == 300
    assert set(covered) == enabled
    assert len({r.run_key for r in requests}) == 2


def _sensor_result(instance: dg.DagsterInstance, database_url: str) -> object:
    with dg.build_sensor_context(
        instance=instance, resources={"database": DatabaseResource(url=database_url)}
    ) as context:
        return tenant_partitions_sensor(context)


def test_sensor_adds_enabled_tenants_and_removes_deleted_ones(
    instance: dg.DagsterInstance, database_url: str, tenants: None, engine: sa.Engine
) -> None:
    instance.add_dynamic_partitions(
        tenant_partitions_name(tenant_shard("deleted-tenant")), ["deleted-tenant"]
    )
    result = _sensor_result(instance, database_url)
    assert isinstance(result, dg.SensorResult)
    requests = result.dynamic_partitions_requests or []
    added = [
        k
        for r in requests
        if isinstance(r, dg.AddDynamicPartitionsRequest)
        for k in r.partition_keys
    ]
    deleted = [
        k
        for r in requests
        if isinstance(r, dg.DeleteDynamicPartitionsRequest)
        for k in r.partition_keys
    ]
    assert added == ["acme", "globex"]
    assert deleted == ["deleted-tenant"]

    instance.add_dynamic_partitions(ACME_TENANTS, ["acme", "globex"])
    instance.delete_dynamic_partition(
        tenant_partitions_name(tenant_shard("deleted-tenant")), "deleted-tenant"
    )
    assert isinstance(_sensor_result(instance, database_url), dg.SkipReason)

    # Disabling keeps the partition (its history stays visible); deleting the tenant removes it.
    with session_scope(engine) as session:
        set_recording_settings(session, "globex", changed_by="test", enabled=False)
    assert isinstance(_sensor_result(instance, database_url), dg.SkipReason)
    with session_scope(engine) as session:
        session.delete(session.get(Tenant, "globex"))
    result = _sensor_result(instance, database_url)
    assert isinstance(result, dg.SensorResult)
    assert [
        k
        for r in result.dynamic_partitions_requests or []
        if isinstance(r, dg.DeleteDynamicPartitionsRequest)
        for k in r.partition_keys
    ] == ["globex"]


def test_sensor_puts_each_tenant_in_its_own_shards_partitions_only(
    instance: dg.DagsterInstance, database_url: str, engine: sa.Engine, tenants: None
) -> None:
    with session_scope(engine) as session:
        set_recording_settings(session, "initech", changed_by="test", enabled=True)
    result = _sensor_result(instance, database_url)
    assert isinstance(result, dg.SensorResult)
    added = {
        r.partitions_def_name: list(r.partition_keys)
        for r in result.dynamic_partitions_requests or []
        if isinstance(r, dg.AddDynamicPartitionsRequest)
    }
    assert added == {
        ACME_TENANTS: ["acme", "globex"],
        tenant_partitions_name(tenant_shard("initech")): ["initech"],
    }
