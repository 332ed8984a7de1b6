"""Jobs: the hourly archive job that the nightly schedule and operators launch, and the daily
retention cleanup."""

import dagster as dg

from recordings_dagster.assets import hourly_conversation_audio_archive
from recordings_dagster.ops import apply_archive_retention

MAX_RETRIES = 2

hourly_archives_job = dg.define_asset_job(
    name="hourly_archives_job",
    # The day's checks run in their own job once all tenants are done, not in each tenant's run.
    selection=dg.AssetSelection.assets(hourly_conversation_audio_archive).without_checks(),
    description="Build hourly Opus ZIP archives for a range of tenant-hours.",
    # One step that converts on its own thread pool: a step subprocess per run would only add
    # a process start and a code load (about 2 CPU-s) to every run.
    executor_def=dg.in_process_executor,
    # Two more attempts, queued behind the night's other runs by the run coordinator.
    tags={"dagster/max_retries": str(MAX_RETRIES), "dagster/retry_strategy": "FROM_FAILURE"},
)


@dg.job(
    description="Delete each tenant's archives that fall outside its retention, recording "
    "what was deleted; a legal hold suspends deletion.",
    tags={"dagster/max_retries": str(MAX_RETRIES)},
)
def retention_job() -> None:
    apply_archive_retention()


integrity_checks_job = dg.define_asset_job(
    name="integrity_checks_job",
    selection=dg.AssetSelection.checks_for_assets(hourly_conversation_audio_archive),
    description="Check a UTC day's archives: complete, intact, and what could not be archived.",
)
