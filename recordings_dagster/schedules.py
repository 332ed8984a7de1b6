"""The nightly schedule: one ranged run per enabled tenant for the previous UTC day."""

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

import dagster as dg

from recordings.catalog import enabled_tenant_ids_and_unusable
from recordings.keys import archive_partition_key, day_hours
from recordings_dagster.jobs import hourly_archives_job, integrity_checks_job, retention_job
from recordings_dagster.partitions import tenant_partitions
from recordings_dagster.resources import DatabaseResource

NIGHTLY_CRON = "30 0 * * *"
# After the night's archives (00:30) and their retries: deleting and archiving never race for
# the same tenant, and yesterday is never near its retention limit anyway.
RETENTION_CRON = "0 4 * * *"
# Once the night's runs and their retries are done: the checks judge the finished day.
CHECKS_CRON = "0 6 * * *"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def previous_utc_day(moment: datetime) -> date:
    return (moment.astimezone(UTC) - timedelta(days=1)).date()


def tenant_day_run_request(tenant_id: str, day: date) -> dg.RunRequest:
    """One run covering `tenant_id`'s 24 hours of `day` (a partition range, not 24 runs)."""
    hours = day_hours(day)
    return dg.RunRequest(
        run_key=f"{day.isoformat()}|{tenant_id}",
        job_name=hourly_archives_job.name,
        tags={
            RANGE_START_TAG: archive_partition_key(tenant_id, hours[0]),
            RANGE_END_TAG: archive_partition_key(tenant_id, hours[-1]),
            "recordings/tenant": tenant_id,
            "recordings/utc_day": day.isoformat(),
        },
    )


def nightly_run_requests(
    instance: dg.DagsterInstance, tenant_ids: Sequence[str], day: date
) -> list[dg.RunRequest]:
    """Register any tenant missing from the dynamic partitions, then request its day.

    Shared by the schedule and the CLI's `materialize`, so both take the same path. A schedule
    cannot return dynamic-partition requests, hence the direct registration.
    """
    known = set(instance.get_dynamic_partitions(tenant_partitions.name or "tenants"))
    missing = [tenant_id for tenant_id in tenant_ids if tenant_id not in known]
    if missing:
        instance.add_dynamic_partitions(tenant_partitions.name or "tenants", missing)
    return [tenant_day_run_request(tenant_id, day) for tenant_id in tenant_ids]


@dg.schedule(
    name="nightly_archives_schedule",
    job=hourly_archives_job,
    cron_schedule=NIGHTLY_CRON,
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="00:30 UTC: archive the previous UTC day for every tenant with the feature on.",
)
def nightly_archives_schedule(
    context: dg.ScheduleEvaluationContext, database: DatabaseResource
) -> list[dg.RunRequest] | dg.SkipReason:
    scheduled = context.scheduled_execution_time or datetime.now(UTC)
    day = previous_utc_day(scheduled)
    with database.session() as session:
        tenant_ids, unusable = enabled_tenant_ids_and_unusable(session)
    for tenant_id in unusable:
        context.log.error(
            f"tenant {tenant_id!r} is enabled but its id is not a valid tenant id (1-63 "
            "lowercase letters, digits or '-'); it gets no run: fix or remove its rows"
        )
    if not tenant_ids:
        return dg.SkipReason(f"no tenant has daily recordings enabled; nothing to do for {day}")
    context.log.info(f"requesting {len(tenant_ids)} tenant-day runs for {day}")
    return nightly_run_requests(context.instance, tenant_ids, day)


@dg.schedule(
    cron_schedule=RETENTION_CRON,
    execution_timezone="UTC",
    job=retention_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Daily retention cleanup, 04:00 UTC.",
)
def retention_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    moment = context.scheduled_execution_time or datetime.now(UTC)
    today = moment.astimezone(UTC).date().isoformat()
    return dg.RunRequest(
        run_key=f"retention|{today}",
        run_config={"ops": {"apply_archive_retention": {"config": {"today": today}}}},
        tags={"recordings/utc_day": today},
    )


@dg.schedule(
    cron_schedule=CHECKS_CRON,
    execution_timezone="UTC",
    job=integrity_checks_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="06:00 UTC: check yesterday's archives (complete, intact, unarchivable).",
)
def integrity_checks_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    day = previous_utc_day(context.scheduled_execution_time or datetime.now(UTC)).isoformat()
    return dg.RunRequest(run_key=f"checks|{day}", tags={"recordings/utc_day": day})
