"""The nightly schedule: the previous UTC day of every enabled tenant, packed into ranged runs
by expected work (many small tenants per run, a heavy one alone)."""

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta

import dagster as dg

from recordings.catalog import enabled_tenant_ids_and_unusable, expected_audio_seconds
from recordings.keys import archive_partition_key, day_hours, parse_archive_partition_key
from recordings.packing import Pack, PackLimits, pack_tenant_days
from recordings_dagster.jobs import hourly_archives_job, integrity_checks_job, retention_job
from recordings_dagster.partitions import tenant_partitions
from recordings_dagster.resources import ArchiveBuildResource, DatabaseResource
from recordings_dagster.tags import (
    FIRST_TENANT_TAG,
    LAST_TENANT_TAG,
    RANGE_END_TAG,
    RANGE_START_TAG,
    STEPPED_OVER_TAG,
    TENANT_COUNT_TAG,
    TENANT_TAG,
    UTC_DAY_TAG,
    stepped_over,
)

NIGHTLY_CRON = "30 0 * * *"
# After the night's archives (00:30) and their retries: deleting and archiving never race for
# the same tenant, and yesterday is never near its retention limit anyway.
RETENTION_CRON = "0 4 * * *"
# Once the night's runs and their retries are done: the checks judge the finished day.
CHECKS_CRON = "0 6 * * *"


def previous_utc_day(moment: datetime) -> date:
    return (moment.astimezone(UTC) - timedelta(days=1)).date()


def tenant_day_run_request(tenant_id: str, day: date) -> dg.RunRequest:
    """One run covering `tenant_id`'s 24 hours of `day` (a partition range, not 24 runs)."""
    return pack_run_request(Pack((tenant_id,), 0.0), day)


def pack_run_request(pack: Pack, day: date) -> dg.RunRequest:
    """One run covering the 24 hours of `day` of the pack's consecutive tenants.

    A run of one tenant carries `recordings/tenant`, so the run queue's per-tenant limit keeps
    its runs (a heavy tenant's night, late-recordings rebuilds, retries) from overlapping; a
    pack of several is disjoint from every other pack of the night by construction, and the
    late-recordings sensor holds a tenant's rebuilds back while a run covering it is queued or
    running (`tenants_in_unfinished_runs`).
    """
    hours = day_hours(day)
    tags = {
        RANGE_START_TAG: archive_partition_key(pack.first, hours[0]),
        RANGE_END_TAG: archive_partition_key(pack.last, hours[-1]),
        UTC_DAY_TAG: day.isoformat(),
        FIRST_TENANT_TAG: pack.first,
        LAST_TENANT_TAG: pack.last,
        TENANT_COUNT_TAG: str(len(pack.tenant_ids)),
    }
    if pack.stepped_over:
        tags[STEPPED_OVER_TAG] = ",".join(pack.stepped_over)
    if pack.single_tenant:
        tags[TENANT_TAG] = pack.first
        run_key = f"{day.isoformat()}|{pack.first}"
    else:
        run_key = f"{day.isoformat()}|{pack.first}..{pack.last}"
    return dg.RunRequest(run_key=run_key, job_name=hourly_archives_job.name, tags=tags)


def nightly_run_requests(
    instance: dg.DagsterInstance,
    tenant_ids: Sequence[str],
    day: date,
    expected_audio_seconds: Mapping[str, float] | None = None,
    limits: PackLimits | None = None,
) -> list[dg.RunRequest]:
    """Register any tenant missing from the dynamic partitions, then request its day, packed
    into runs by expected audio (`recordings/packing.py`).

    Shared by the schedule and the CLI's `materialize`, so both take the same path. A schedule
    cannot return dynamic-partition requests, hence the direct registration.
    """
    name = tenant_partitions.name or "tenants"
    order = list(instance.get_dynamic_partitions(name))
    known = set(order)
    missing = [tenant_id for tenant_id in tenant_ids if tenant_id not in known]
    if missing:
        instance.add_dynamic_partitions(name, missing)
        order.extend(missing)
    packs = pack_tenant_days(
        order, set(tenant_ids), expected_audio_seconds or {}, limits or PackLimits()
    )
    return [pack_run_request(pack, day) for pack in packs]


def tenants_in_unfinished_runs(instance: dg.DagsterInstance) -> set[str]:
    """Every tenant an archive run that has not finished covers (queued, starting, running,
    canceling): what must not get another run of its own meanwhile."""
    runs = instance.get_runs(
        dg.RunsFilter(
            job_name=hourly_archives_job.name,
            statuses=[
                dg.DagsterRunStatus.QUEUED,
                dg.DagsterRunStatus.NOT_STARTED,
                dg.DagsterRunStatus.STARTING,
                dg.DagsterRunStatus.STARTED,
                dg.DagsterRunStatus.CANCELING,
            ],
        )
    )
    order = TenantOrder(instance)
    return {tenant for run in runs for tenant in tenants_covered(run.tags, order)}


class TenantOrder:
    """The `tenants` dynamic partitions in Dagster's order, read once and only if needed."""

    def __init__(self, instance: dg.DagsterInstance) -> None:
        self._instance = instance
        self._order: list[str] | None = None

    def between(self, first: str, last: str) -> list[str]:
        if self._order is None:
            name = tenant_partitions.name or "tenants"
            self._order = list(self._instance.get_dynamic_partitions(name))
        if first not in self._order or last not in self._order:
            return []  # a tenant deleted since: its partitions (and its archives) are gone
        return self._order[self._order.index(first) : self._order.index(last) + 1]


def tenants_covered(tags: Mapping[str, str], order: TenantOrder) -> list[str]:
    """The tenants an archive run (by its tags) archives: its range's in partition order but
    those it steps over, its single partition's, or its tenant tag's."""
    start, end = tags.get(RANGE_START_TAG), tags.get(RANGE_END_TAG)
    if start and end:
        first = parse_archive_partition_key(start)[0]
        last = parse_archive_partition_key(end)[0]
        if first == last:
            return [first]
        skipped = stepped_over(tags)
        return [tenant for tenant in order.between(first, last) if tenant not in skipped]
    if tags.get("dagster/partition"):
        return [parse_archive_partition_key(tags["dagster/partition"])[0]]
    tenant = tags.get(TENANT_TAG)
    return [tenant] if tenant else []


@dg.schedule(
    name="nightly_archives_schedule",
    job=hourly_archives_job,
    cron_schedule=NIGHTLY_CRON,
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="00:30 UTC: archive the previous UTC day for every tenant with the feature on.",
)
def nightly_archives_schedule(
    context: dg.ScheduleEvaluationContext,
    database: DatabaseResource,
    archive_build: ArchiveBuildResource,
) -> list[dg.RunRequest] | dg.SkipReason:
    scheduled = context.scheduled_execution_time or datetime.now(UTC)
    day = previous_utc_day(scheduled)
    start = datetime.combine(day, time(), UTC)
    with database.session() as session:
        tenant_ids, unusable = enabled_tenant_ids_and_unusable(session)
        expected = expected_audio_seconds(session, tenant_ids, start, start + timedelta(days=1))
    for tenant_id in unusable:
        context.log.error(
            f"tenant {tenant_id!r} is enabled but its id is not a valid tenant id (1-63 "
            "lowercase letters, digits or '-'); it gets no run: fix or remove its rows"
        )
    if not tenant_ids:
        return dg.SkipReason(f"no tenant has daily recordings enabled; nothing to do for {day}")
    requests = nightly_run_requests(
        context.instance, tenant_ids, day, expected, archive_build.pack_limits()
    )
    context.log.info(
        f"requesting {len(requests)} runs for {len(tenant_ids)} tenant-days of {day} "
        f"({len(expected)} with audio, {sum(expected.values()) / 3600:.1f} h in all)"
    )
    return requests


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
        tags={UTC_DAY_TAG: today},
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
    return dg.RunRequest(run_key=f"checks|{day}", tags={UTC_DAY_TAG: day})
