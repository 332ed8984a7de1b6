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
