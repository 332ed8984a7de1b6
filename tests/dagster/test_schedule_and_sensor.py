"""The nightly schedule's run requests for a given tick, and the tenant partitions sensor.

Both read the real application database; the Dagster instance is a real (temporary) one, so
dynamic partitions are really registered.
"""

from datetime import UTC, datetime

import dagster as dg
import pytest
import sqlalchemy as sa

from recordings.catalog import ensure_tenant, set_recording_settings
from recordings.db.engine import session_scope
from recordings.db.models import Tenant, TenantRecordingSettings
from recordings_dagster.resources import DatabaseResource
from recordings_dagster.schedules import nightly_archives_schedule
from recordings_dagster.sensors import tenant_partitions_sensor

TICK = datetime(2025, 12, 13, 0, 30, tzinfo=UTC)


@pytest.fixture
def tenants(engine: sa.Engine) -> None:
    with session_scope(engine) as session:
        for tenant_id, enabled in (("acme", True), ("globex", True), ("initech", False)):
            ensure_tenant(session, tenant_id)
            set_recording_settings(session, tenant_id, changed_by="test", enabled=enabled)


def _schedule_requests(instance: dg.DagsterInstance, database_url: str) -> object:
    with dg.build_schedule_context(
        instance=instance,
        scheduled_execution_time=TICK,
        resources={"database": DatabaseResource(url=database_url)},
    ) as context:
        return nightly_archives_schedule(context)


def test_schedule_requests_one_ranged_run_per_enabled_tenant_for_yesterday(
    instance: dg.DagsterInstance, database_url: str, tenants: None
) -> None:
    requests = _schedule_requests(instance, database_url)
    assert isinstance(requests, list)
    by_tenant = {r.tags["recordings/tenant"]: r for r in requests}
    assert sorted(by_tenant) == ["acme", "globex"]  # initech is disabled
    acme = by_tenant["acme"]
    assert acme.tags["dagster/asset_partition_range_start"] == "2025-12-12-00:00|acme"
    assert acme.tags["dagster/asset_partition_range_end"] == "2025-12-12-23:00|acme"
    assert acme.run_key == "2025-12-12|acme"
    assert acme.job_name == "hourly_archives_job"
    # The schedule registers tenants the sensor has not seen yet, so the range is valid.
    assert sorted(instance.get_dynamic_partitions("tenants")) == ["acme", "globex"]


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
    assert sorted(r.tags["recordings/tenant"] for r in requests) == ["acme", "globex"]
    assert sorted(instance.get_dynamic_partitions("tenants")) == ["acme", "globex"]
    with dg.build_sensor_context(
        instance=instance, resources={"database": DatabaseResource(url=database_url)}
    ) as context:
        tenant_partitions_sensor(context)
    assert sorted(instance.get_dynamic_partitions("tenants")) == ["acme", "globex"]


def test_schedule_skips_when_no_tenant_is_enabled(
    instance: dg.DagsterInstance, database_url: str
) -> None:
    result = _schedule_requests(instance, database_url)
    assert isinstance(result, dg.SkipReason)
    assert "no tenant" in (result.skip_message or "")


def test_schedule_tick_covers_every_enabled_tenant_at_scale(
    instance: dg.DagsterInstance, database_url: str, engine: sa.Engine
) -> None:
    with session_scope(engine) as session:
        for index in range(300):
            ensure_tenant(session, f"tenant-{index:04d}")
            set_recording_settings(
                session, f"tenant-{index:04d}", changed_by="test", enabled=index % 3 != 0
            )
    requests = _schedule_requests(instance, database_url)
    assert isinstance(requests, list)
    assert len(requests) == 200
    assert len({r.run_key for r in requests}) == 200


def _sensor_result(instance: dg.DagsterInstance, database_url: str) -> object:
    with dg.build_sensor_context(
        instance=instance, resources={"database": DatabaseResource(url=database_url)}
    ) as context:
        return tenant_partitions_sensor(context)


def test_sensor_adds_enabled_tenants_and_removes_deleted_ones(
    instance: dg.DagsterInstance, database_url: str, tenants: None, engine: sa.Engine
) -> None:
    instance.add_dynamic_partitions("tenants", ["deleted-tenant"])
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

    instance.add_dynamic_partitions("tenants", ["acme", "globex"])
    instance.delete_dynamic_partition("tenants", "deleted-tenant")
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
