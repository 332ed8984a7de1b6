"""Jobs: one hourly archive job per shard of tenants, which the nightly schedules and operators
launch, the day's integrity checks, and the daily retention cleanup."""

import dagster as dg

from recordings.keys import SHARD_COUNT, shard_name, tenant_shard
from recordings_dagster.assets import ARCHIVE_ASSETS
from recordings_dagster.ops import apply_archive_retention

MAX_RETRIES = 2


# A job selects assets of one partitions definition only, so each shard has its own.
HOURLY_ARCHIVES_JOBS = tuple(
    dg.define_asset_job(
        name=f"hourly_archives_{shard_name(shard)}",
        # The day's checks run in their own job once all tenants are done, not in each run.
        selection=dg.AssetSelection.assets(ARCHIVE_ASSETS[shard]).without_checks(),
        description=f"Build hourly Opus ZIP archives for a range of tenant-hours of shard "
        f"{shard:02d}.",
        # One step that converts on its own thread pool: a step subprocess per run would only
        # add a process start and a code load (about 2 CPU-s) to every run.
        executor_def=dg.in_process_executor,
        # Two more attempts, queued behind the night's other runs by the run coordinator.
        tags={"dagster/max_retries": str(MAX_RETRIES), "dagster/retry_strategy": "FROM_FAILURE"},
    )
    for shard in range(SHARD_COUNT)
)
"""The archive jobs, shard by shard (`HOURLY_ARCHIVES_JOBS[7]` is `hourly_archives_shard_07`)."""

HOURLY_ARCHIVES_JOB_NAMES = frozenset(job.name for job in HOURLY_ARCHIVES_JOBS)


def tenant_archives_job_name(tenant_id: str) -> str:
    """The name of the archive job that archives `tenant_id` (its shard's)."""
    return HOURLY_ARCHIVES_JOBS[tenant_shard(tenant_id)].name


@dg.job(
    description="Delete each tenant's archives that fall outside its retention, recording "
    "what was deleted; a legal hold suspends deletion.",
    tags={"dagster/max_retries": str(MAX_RETRIES)},
)
def retention_job() -> None:
    apply_archive_retention()


integrity_checks_job = dg.define_asset_job(
    name="integrity_checks_job",
    # One job over every shard's checks: Dagster accepts checks of differently partitioned
    # assets in one job (not the assets themselves), and the checks run unpartitioned.
    selection=dg.AssetSelection.checks_for_assets(*ARCHIVE_ASSETS),
    description="Check a UTC day's archives: complete, intact, and what could not be archived.",
)
