"""The code location loads, and every job, schedule and sensor resolves by name."""

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from recordings_dagster.definitions import defs
from recordings_dagster.partitions import PARTITION_WINDOW_DAYS, hour_partitions, window_start


def test_every_definition_resolves() -> None:
    assert defs.resolve_job_def("hourly_archives_job").name == "hourly_archives_job"
    schedule = defs.resolve_schedule_def("nightly_archives_schedule")
    assert schedule.cron_schedule == "30 0 * * *"
    assert schedule.execution_timezone == "UTC"
    assert defs.resolve_sensor_def("tenant_partitions_sensor").name == "tenant_partitions_sensor"
    assert defs.resolve_assets_def("hourly_conversation_audio_archive").partitions_def is not None
    for name, cron in (
        ("retention_schedule", "0 4 * * *"),
        ("integrity_checks_schedule", "0 6 * * *"),
    ):
        assert defs.resolve_schedule_def(name).cron_schedule == cron
    assert defs.resolve_sensor_def("late_recordings_sensor").job_name == "hourly_archives_job"
    checks = {key.name for key in defs.resolve_asset_graph().asset_check_keys}
    assert checks == {"day_complete", "archives_intact", "unarchivable_recordings"}
    # The nightly job archives; the day's checks run in their own job.
    assert not defs.resolve_job_def("hourly_archives_job").asset_layer.asset_graph.asset_check_keys


def test_the_job_asks_for_two_more_attempts() -> None:
    job = defs.resolve_job_def("hourly_archives_job")
    assert job.tags["dagster/max_retries"] == "2"


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
