"""The code location loads, and every job, schedule and sensor resolves by name."""

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from recordings.keys import SHARD_COUNT
from recordings_dagster.definitions import defs
from recordings_dagster.partitions import (
    PARTITION_WINDOW_DAYS,
    hour_partitions,
    shard_partitions,
    tenant_partitions_name,
    window_start,
)
from recordings_dagster.resources import webhook_from_environment
from recordings_instance.archives import shard_asset_key

SHARD_JOBS = [f"hourly_archives_shard_{shard:02d}" for shard in range(SHARD_COUNT)]


def test_every_definition_resolves() -> None:
    for shard, job_name in enumerate(SHARD_JOBS):
        assert defs.resolve_job_def(job_name).name == job_name
        schedule = defs.resolve_schedule_def(f"nightly_archives_shard_{shard:02d}")
        assert schedule.cron_schedule == "30 0 * * *"
        assert schedule.execution_timezone == "UTC"
        assert schedule.job_name == job_name
        assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
        asset = defs.resolve_assets_def(shard_asset_key(shard))
        assert asset.partitions_def == shard_partitions(shard)
    assert defs.resolve_sensor_def("tenant_partitions_sensor").name == "tenant_partitions_sensor"
    for name, cron in (
        ("retention_schedule", "0 4 * * *"),
        ("integrity_checks_schedule", "0 6 * * *"),
    ):
        assert defs.resolve_schedule_def(name).cron_schedule == cron
    for name in ("webhook_events_sensor", "webhook_delivery_sensor"):
        sensor = defs.resolve_sensor_def(name)
        assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
        assert sensor.required_resource_keys == {"database", "webhook"}
    late = defs.resolve_sensor_def("late_recordings_sensor")
    assert sorted(target.job_name for target in late.targets) == SHARD_JOBS
    checks = {key.name for key in defs.resolve_asset_graph().asset_check_keys}
    assert checks == {"day_complete", "archives_intact", "unarchivable_recordings"}
    # The nightly jobs archive; the day's checks run in their own job.
    for job_name in SHARD_JOBS:
        assert not defs.resolve_job_def(job_name).asset_layer.asset_graph.asset_check_keys


def test_the_archive_is_one_asset_per_shard_of_tenants() -> None:
    """Each shard's asset has its own tenants (dynamic partitions `tenants_07`) and the shared
    hour window, so no asset's partition space grows with every tenant."""
    keys = set(defs.resolve_asset_graph().get_all_asset_keys())
    assert keys == {shard_asset_key(shard) for shard in range(SHARD_COUNT)}
    assert shard_asset_key(7).to_user_string() == "hourly_conversation_audio_archive/shard_07"
    partitions = shard_partitions(7)
    tenants = partitions.get_partitions_def_for_dimension("tenant")
    assert isinstance(tenants, dg.DynamicPartitionsDefinition)
    assert tenants.name == tenant_partitions_name(7) == "tenants_07"
    assert partitions.get_partitions_def_for_dimension("hour") == hour_partitions


def test_the_checks_job_checks_every_shard() -> None:
    checks = defs.resolve_job_def("integrity_checks_job").asset_layer.asset_graph.asset_check_keys
    assert {(key.asset_key, key.name) for key in checks} == {
        (shard_asset_key(shard), name)
        for shard in range(SHARD_COUNT)
        for name in ("day_complete", "archives_intact", "unarchivable_recordings")
    }


def test_the_job_asks_for_two_more_attempts() -> None:
    for job_name in SHARD_JOBS:
        job = defs.resolve_job_def(job_name)
        assert job.tags["dagster/max_retries"] == "2"
        assert job.tags["dagster/retry_strategy"] == "FROM_FAILURE"


def test_the_hourly_window_is_bounded_to_retention_plus_yesterday() -> None:
    assert window_start(datetime(2025, 12, 13, 0, 30, tzinfo=UTC)) == datetime(
        2025, 12, 5, tzinfo=UTC
    )
    assert PARTITION_WINDOW_DAYS == 8
    now = datetime.now(UTC)
    keys = hour_partitions.get_partition_keys(current_time=now)
    assert keys[0] == window_start(now).strftime("%Y-%m-%d-%H:%M")
    # Eight whole days plus today's finished hours: the window slides, it does not grow.
    assert len(keys) == 8 * 24 + now.hour


def test_the_instance_config_enables_run_retries(dagster_home: Path) -> None:
    # dagster_home holds the repository's dagster.yaml (plus the test run's storage).
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        assert instance.run_retries_enabled
        assert instance.run_retries_max_retries == 2


def test_conversion_threads_follow_the_container_cpu_quota(tmp_path: Path) -> None:
    from recordings_dagster.resources import usable_cpus

    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("max 100000\n")
    unlimited = usable_cpus(cpu_max)
    assert unlimited >= 1
    cpu_max.write_text("150000 100000\n")  # 1.5 CPUs: one thread
    assert usable_cpus(cpu_max) == 1
    cpu_max.write_text(f"{(unlimited + 8) * 100000} 100000\n")  # a quota above the affinity
    assert usable_cpus(cpu_max) == unlimited
    assert usable_cpus(tmp_path / "missing") == unlimited


def test_the_code_location_loads_without_a_webhook_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """Webhooks are optional: without RECORDINGS_WEBHOOK_KEY the resource has no key (its
    sensors skip, naming the variable); with it, the key is bound as an environment variable,
    never copied into the configuration."""
    monkeypatch.delenv("RECORDINGS_WEBHOOK_KEY", raising=False)
    monkeypatch.delenv("RECORDINGS_WEBHOOK_ALLOW_LOOPBACK", raising=False)
    off = webhook_from_environment()
    assert (off.webhook_key, off.enabled, off.allow_loopback) == (None, False, False)
    monkeypatch.setenv("RECORDINGS_WEBHOOK_KEY", "a2V5" * 11)
    monkeypatch.setenv("RECORDINGS_WEBHOOK_ALLOW_LOOPBACK", "true")
    on = webhook_from_environment()
    assert on.allow_loopback
    assert on.webhook_key == "RECORDINGS_WEBHOOK_KEY"  # the EnvVar, resolved when a sensor runs
    monkeypatch.setenv("RECORDINGS_WEBHOOK_ALLOW_LOOPBACK", "ture")
    with pytest.raises(
        ValueError, match="RECORDINGS_WEBHOOK_ALLOW_LOOPBACK='ture' is not a yes/no"
    ):
        webhook_from_environment()
    monkeypatch.setenv("RECORDINGS_WEBHOOK_ALLOW_LOOPBACK", "0")
    monkeypatch.setenv("RECORDINGS_WEBHOOK_TIMEOUT_SECONDS", "45")
    with pytest.raises(ValueError, match="_TIMEOUT_SECONDS='45' is not a number of seconds above"):
        webhook_from_environment()
