"""The single Dagster entry point: assets, checks, jobs, schedules, sensors and resources."""

import dagster as dg

from recordings_dagster.assets import hourly_conversation_audio_archive
from recordings_dagster.checks import ARCHIVE_CHECKS
from recordings_dagster.jobs import hourly_archives_job, integrity_checks_job, retention_job
from recordings_dagster.resources import default_resources
from recordings_dagster.schedules import (
    integrity_checks_schedule,
    nightly_archives_schedule,
    retention_schedule,
)
from recordings_dagster.sensors import (
    archive_failures_sensor,
    late_recordings_sensor,
    stalled_archive_runs_sensor,
    tenant_partitions_sensor,
)

defs = dg.Definitions(
    assets=[hourly_conversation_audio_archive],
    asset_checks=ARCHIVE_CHECKS,
    jobs=[hourly_archives_job, retention_job, integrity_checks_job],
    schedules=[nightly_archives_schedule, retention_schedule, integrity_checks_schedule],
    sensors=[
        tenant_partitions_sensor,
        late_recordings_sensor,
        stalled_archive_runs_sensor,
        archive_failures_sensor,
    ],
    resources=default_resources(),
)
