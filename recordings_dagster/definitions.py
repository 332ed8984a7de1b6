"""The single Dagster entry point: assets, checks, jobs, schedules, sensors and resources."""

import dagster as dg

from recordings_dagster.assets import ARCHIVE_ASSETS
from recordings_dagster.checks import ARCHIVE_CHECKS
from recordings_dagster.jobs import HOURLY_ARCHIVES_JOBS, integrity_checks_job, retention_job
from recordings_dagster.resources import default_resources
from recordings_dagster.schedules import (
    NIGHTLY_ARCHIVES_SCHEDULES,
    integrity_checks_schedule,
    retention_schedule,
)
from recordings_dagster.sensors import (
    archive_failures_sensor,
    late_recordings_sensor,
    stalled_archive_runs_sensor,
    tenant_partitions_sensor,
    webhook_delivery_sensor,
    webhook_events_sensor,
)

defs = dg.Definitions(
    assets=ARCHIVE_ASSETS,
    asset_checks=ARCHIVE_CHECKS,
    jobs=[*HOURLY_ARCHIVES_JOBS, retention_job, integrity_checks_job],
    schedules=[*NIGHTLY_ARCHIVES_SCHEDULES, retention_schedule, integrity_checks_schedule],
    sensors=[
        tenant_partitions_sensor,
        late_recordings_sensor,
        stalled_archive_runs_sensor,
        archive_failures_sensor,
        webhook_events_sensor,
        webhook_delivery_sensor,
    ],
    resources=default_resources(),
)
