"""Jobs: the hourly archive job that the nightly schedule and operators launch."""

import dagster as dg

from recordings_dagster.assets import hourly_conversation_audio_archive

MAX_RETRIES = 2

hourly_archives_job = dg.define_asset_job(
    name="hourly_archives_job",
    selection=[hourly_conversation_audio_archive],
    description="Build hourly Opus ZIP archives for a range of tenant-hours.",
    # Two more attempts, queued behind the night's other runs by the run coordinator.
    tags={"dagster/max_retries": str(MAX_RETRIES), "dagster/retry_strategy": "FROM_FAILURE"},
)
