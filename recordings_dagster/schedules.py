"""The nightly schedules: the previous UTC day of every enabled tenant, packed into ranged runs
by expected work (many small tenants per run, a heavy one alone). One schedule per shard of
tenants, each submitting its shard's runs to its shard's job; the daemon's threaded scheduler
evaluates them side by side. Then the day's retention cleanup and integrity checks."""

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta

import dagster as dg

from recordings.catalog import enabled_tenant_ids_and_unusable, expected_audio_seconds
from recordings.keys import (
    SHARD_COUNT,
    archive_partition_key,
    day_hours,
    parse_archive_partition_key,
    shard_name,
    tenant_shard,
    tenants_by_shard,
)
from recordings.packing import Pack, PackLimits, pack_tenant_days
from recordings_dagster.jobs import (
    HOURLY_ARCHIVES_JOB_NAMES,
    HOURLY_ARCHIVES_JOBS,
    integrity_checks_job,
    retention_job,
    tenant_archives_job_name,
)
from recordings_dagster.partitions import tenant_partitions_name
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
    """One run of the pack's shard job covering the 24 hours of `day` of the pack's consecutive
    tenants (a pack never spans shards).

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
    return dg.RunRequest(run_key=run_key, job_name=tenant_archives_job_name(pack.first), tags=tags)


def nightly_run_requests(
    instance: dg.DagsterInstance,
    tenant_ids: Sequence[str],
    day: date,
    expected_audio_seconds: Mapping[str, float] | None = None,
    limits: PackLimits | None = None,
) -> list[dg.RunRequest]:
    """Register any tenant missing from its shard's dynamic partitions, then request its day,
    packed into runs by expected audio (`recordings/packing.py`), shard by shard.

    Shared by the schedules (each passes its shard's tenants) and the CLI's `materialize` (every
    tenant), so both take the same path. A schedule cannot return dynamic-partition requests,
    hence the direct registration.
    """
    requests: list[dg.RunRequest] = []
    for shard, shard_tenants in sorted(tenants_by_shard(tenant_ids).items()):
        name = tenant_partitions_name(shard)
        order = list(instance.get_dynamic_partitions(name))
        known = set(order)
        missing = [tenant_id for tenant_id in shard_tenants if tenant_id not in known]
        if missing:
            instance.add_dynamic_partitions(name, missing)
            order.extend(missing)
        packs = pack_tenant_days(
            order, set(shard_tenants), expected_audio_seconds or {}, limits or PackLimits()
        )
        requests += [pack_run_request(pack, day) for pack in packs]
    return requests


UNFINISHED = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def tenants_in_unfinished_runs(instance: dg.DagsterInstance) -> set[str]:
    """Every tenant an archive run that has not finished covers (queued, starting, running,
    canceling): what must not get another run of its own meanwhile."""
    # One read for every shard's job: Dagster's run filter takes one job name.
    runs = [
        run
        for run in instance.get_runs(dg.RunsFilter(statuses=UNFINISHED))
        if run.job_name in HOURLY_ARCHIVES_JOB_NAMES
    ]
    order = TenantOrder(instance)
    return {tenant for run in runs for tenant in tenants_covered(run.tags, order)}


class TenantOrder:
    """Each shard's tenant partitions in Dagster's order, each read once and only if needed."""

    def __init__(self, instance: dg.DagsterInstance) -> None:
        self._instance = instance
        self._orders: dict[int, list[str]] = {}

    def between(self, first: str, last: str) -> list[str]:
        """The tenants from `first` to `last` (of one shard) in their partitions' order."""
        shard = tenant_shard(first)
        order = self._orders.get(shard)
        if order is None:
            order = list(self._instance.get_dynamic_partitions(tenant_partitions_name(shard)))
            self._orders[shard] = order
        if first not in order or last not in order:
            return []  # a tenant deleted since: its partitions (and its archives) are gone
        return order[order.index(first) : order.index(last) + 1]


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


def nightly_archives(
    context: dg.ScheduleEvaluationContext,
    database: DatabaseResource,
    archive_build: ArchiveBuildResource,
    shard: int,
) -> list[dg.RunRequest] | dg.SkipReason:
    """The body of the shard's nightly schedule: its enabled tenants' previous day, packed."""
    scheduled = context.scheduled_execution_time or datetime.now(UTC)
    day = previous_utc_day(scheduled)
    start = datetime.combine(day, time(), UTC)
    with database.session() as session:
        enabled, unusable = enabled_tenant_ids_and_unusable(session)
        tenant_ids = [tenant_id for tenant_id in enabled if tenant_shard(tenant_id) == shard]
        expected = expected_audio_seconds(session, tenant_ids, start, start + timedelta(days=1))
    # Each unusable id is reported once a night, by the schedule of the shard its id hashes to.
    for tenant_id in unusable:
        if tenant_shard(tenant_id) == shard:
            context.log.error(
                f"tenant {tenant_id!r} is enabled but its id is not a valid tenant id (1-63 "
                "lowercase letters, digits or '-'); it gets no run: fix or remove its rows"
            )
    if not tenant_ids:
        return dg.SkipReason(
            f"no tenant of {shard_name(shard)} has daily recordings enabled; nothing to do "
            f"for {day}"
        )
    requests = nightly_run_requests(
        context.instance, tenant_ids, day, expected, archive_build.pack_limits()
    )
    context.log.info(
        f"requesting {len(requests)} runs for {len(tenant_ids)} tenant-days of {day} "
        f"({len(expected)} with audio, {sum(expected.values()) / 3600:.1f} h in all)"
    )
    return requests


def _nightly_archives_schedule(shard: int) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=f"nightly_archives_{shard_name(shard)}",
        job=HOURLY_ARCHIVES_JOBS[shard],
        cron_schedule=NIGHTLY_CRON,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"00:30 UTC: archive the previous UTC day for every tenant of shard "
        f"{shard:02d} with the feature on.",
    )
    def nightly_archives_schedule(
        context: dg.ScheduleEvaluationContext,
        database: DatabaseResource,
        archive_build: ArchiveBuildResource,
    ) -> list[dg.RunRequest] | dg.SkipReason:
        return nightly_archives(context, database, archive_build, shard)

    return nightly_archives_schedule


NIGHTLY_ARCHIVES_SCHEDULES = tuple(_nightly_archives_schedule(s) for s in range(SHARD_COUNT))
"""The nightly schedules, shard by shard (`nightly_archives_shard_07`)."""


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
