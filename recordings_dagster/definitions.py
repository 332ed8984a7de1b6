"""The single Dagster entry point: assets, jobs, schedules, sensor and resources."""

import dagster as dg

from recordings_dagster.assets import hourly_conversation_audio_archive
from recordings_dagster.jobs import hourly_archives_job, retention_job
from recordings_dagster.resources import default_resources
from recordings_dagster.schedules import nightly_archives_schedule, retention_schedule
from recordings_dagster.sensors import tenant_partitions_sensor

defs = dg.Definitions(
    assets=[hourly_conversation_audio_archive],
    jobs=[hourly_archives_job, retention_job],
    schedules=[nightly_archives_schedule, retention_schedule],
    sensors=[tenant_partitions_sensor],
    resources=default_resources(),
)
