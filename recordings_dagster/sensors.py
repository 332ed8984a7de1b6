"""Sensors: each shard's tenant dynamic partitions in step with the application database, late
recordings re-archived on their shard's job, and runs whose worker died failed so that their
retry comes."""

import json
from datetime import UTC, datetime, timedelta

import dagster as dg
import sqlalchemy as sa

from recordings.archive.evidence import GENERATED_AT, optional_value
from recordings.catalog import (
    enabled_among,
    enabled_tenant_ids,
    recordings_registered_since,
    tenant_ids,
)
from recordings.db.models import TenantRecordingSettings
from recordings.failures import HourFailure, record_hour_failures, recorded_by_run
from recordings.keys import (
    SHARD_COUNT,
    archive_partition_key,
    hour_start,
    parse_archive_partition_key,
    tenant_shard,
    tenants_by_shard,
)
from recordings.leases import silent_holders
from recordings.retention import is_kept
from recordings_dagster.execution import run_failure_message
from recordings_dagster.jobs import HOURLY_ARCHIVES_JOBS, tenant_archives_job_name
from recordings_dagster.partitions import (
    shard_partitions,
    tenant_partitions_name,
    tenant_partitions_of,
)
from recordings_dagster.resources import ArchiveBuildResource, DatabaseResource
from recordings_dagster.schedules import tenants_in_unfinished_runs
from recordings_dagster.tags import RANGE_END_TAG, RANGE_START_TAG, TENANT_TAG, stepped_over
from recordings_instance.archives import latest_archive_records, record_metadata


@dg.sensor(
    name="tenant_partitions_sensor",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Adds a partition for every tenant with the feature enabled, in its shard's tenants; "
        "removes partitions of tenants deleted from the database. Disabled tenants keep their "
        "partitions (history)."
    ),
)
def tenant_partitions_sensor(
    context: dg.SensorEvaluationContext, database: DatabaseResource
) -> dg.SensorResult | dg.SkipReason:
    with database.session() as session:
        enabled = enabled_tenant_ids(session)
        existing_tenants = set(tenant_ids(session))
    enabled_by_shard = tenants_by_shard(enabled)
    requests: list[dg.AddDynamicPartitionsRequest | dg.DeleteDynamicPartitionsRequest] = []
    added: list[str] = []
    deleted: list[str] = []
    known_count = 0
    for shard in range(SHARD_COUNT):
        known = set(context.instance.get_dynamic_partitions(tenant_partitions_name(shard)))
        known_count += len(known)
        to_add = sorted(set(enabled_by_shard.get(shard, [])) - known)
        to_delete = sorted(known - existing_tenants)
        partitions = tenant_partitions_of(shard)
        if to_add:
            requests.append(partitions.build_add_request(to_add))
        if to_delete:
            requests.append(partitions.build_delete_request(to_delete))
        added += to_add
        deleted += to_delete
    if not requests:
        return dg.SkipReason(f"{known_count} tenant partitions already match the database")
    context.log.info(f"tenant partitions: adding {sorted(added)}, removing {sorted(deleted)}")
    return dg.SensorResult(dynamic_partitions_requests=requests)


LATE_LOOKBACK = timedelta(days=1)  # how far back the sensor's first evaluation looks
LATE_REASON_TAG = "recordings/reason"
UNDECIDED_FOR = timedelta(hours=6)


def _archived_contents_times(
    instance: dg.DagsterInstance, partition_keys: set[str]
) -> dict[str, datetime]:
    """When each partition's latest archive selected its recordings (its `generated_at`)."""
    records = latest_archive_records(instance, partition_keys).values()
    times: dict[str, datetime] = {}
    for record in records:
        if record.partition_key is None or record.asset_materialization is None:
            continue
        generated = optional_value(record_metadata(record), GENERATED_AT, str)
        times[record.partition_key] = (
            datetime.fromisoformat(generated)
            if generated is not None
            else datetime.fromtimestamp(record.timestamp, UTC)
        )
    return times


@dg.sensor(
    name="late_recordings_sensor",
    jobs=list(HOURLY_ARCHIVES_JOBS),
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Re-archives an hour when a recording for it is registered after its archive was made "
        "(within the tenant's retention); the new archive replaces the old one atomically and "
        "its materialization records the SHA-256 it replaces."
    ),
)
def late_recordings_sensor(
    context: dg.SensorEvaluationContext, database: DatabaseResource
) -> dg.SensorResult:
    now = datetime.now(UTC)
    since = datetime.fromisoformat(context.cursor) if context.cursor else now - LATE_LOOKBACK
    with database.session() as session:
        registered = recordings_registered_since(session, since)
        settings = {
            s.tenant_id: s for s in session.scalars(sa.select(TenantRecordingSettings)) if s.enabled
        }
    if not registered:
        return dg.SensorResult(skip_reason=f"no recording registered since {since.isoformat()}")
    newest: dict[str, datetime] = {}  # partition key -> latest registration in it
    for recording in registered:
        tenant = settings.get(recording.tenant_id)
        hour = hour_start(recording.started_at)
        if tenant is None or hour + timedelta(hours=1) > now:
            continue  # feature off, or the hour is not over (the nightly run will take it)
        if not is_kept(hour.date(), tenant.retention_days, now.date()):
            continue  # outside retention: never resurrected
        key = archive_partition_key(recording.tenant_id, hour)
        newest[key] = max(newest.get(key, recording.registered_at), recording.registered_at)
    selected_at = _archived_contents_times(context.instance, set(newest)) if newest else {}
    late = {
        key: registered_at
        for key, registered_at in newest.items()
        if key in selected_at and selected_at[key] < registered_at
    }
    # A tenant in a run that has not finished (its night's pack, a retry) waits for that run:
    # one tenant's runs never overlap. Its hours are looked at again on the next ticks.
    busy = tenants_in_unfinished_runs(context.instance) if late else set()
    deferred = [t for key, t in late.items() if parse_archive_partition_key(key)[0] in busy]
    requests = [
        dg.RunRequest(
            run_key=f"late|{key}|{registered_at.isoformat()}",
            job_name=tenant_archives_job_name(tenant_id),
            partition_key=key,
            # The tenant tag puts the rebuild under the per-tenant run limit, so it never runs
            # alongside another single-tenant run of the tenant (a heavy tenant's night, another
            # rebuild of its hours).
            tags={LATE_REASON_TAG: "late_recordings", TENANT_TAG: tenant_id},
        )
        for key, registered_at in sorted(late.items())
        if (tenant_id := parse_archive_partition_key(key)[0]) not in busy
    ]
    # An hour not archived yet may be in a run right now whose archive will not contain the
    # recording: look at it again on the next ticks (until UNDECIDED_FOR has passed; after
    # that the hour is the nightly run's and the integrity checks' business).
    undecided = deferred + [
        registered_at
        for key, registered_at in newest.items()
        if key not in selected_at and now - registered_at < UNDECIDED_FOR
    ]
    cursor = (
        min(undecided) - timedelta(microseconds=1) if undecided else registered[-1].registered_at
    )
    if requests:
        context.log.info(f"re-archiving {len(requests)} hour(s) with late recordings")
    if deferred:
        context.log.info(
            f"{len(deferred)} hour(s) with late recordings wait for their tenant's unfinished "
            "run before they are re-archived"
        )
    return dg.SensorResult(
        run_requests=requests,
        cursor=cursor.isoformat(),
        skip_reason=None
        if requests
        else (
            f"{len(deferred)} hour(s) with late recordings wait for their tenant's run"
            if deferred
            else "no archived hour received a late recording"
        ),
    )


STALLED_CURSOR_VERSION = 1


@dg.sensor(
    name="stalled_archive_runs_sensor",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Fails an archive run whose worker has stopped refreshing its hour leases (killed, out "
        "of memory, lost node) while Dagster still shows it started, so that its retry comes; "
        "a run is failed only when it was silent at two evaluations in a row."
    ),
)
def stalled_archive_runs_sensor(
    context: dg.SensorEvaluationContext,
    database: DatabaseResource,
    archive_build: ArchiveBuildResource,
) -> dg.SkipReason:
    now = datetime.now(UTC)
    with database.session() as session:
        silent = silent_holders(
            session, now=now, silent_for=timedelta(seconds=archive_build.hour_lease_seconds)
        )
    # Silent at the previous evaluation too, with no refresh since: not a database blip that
    # delayed the refresher (which refreshes every fifth of a lease once it can again).
    previous = json.loads(context.cursor) if context.cursor else {}
    seen_before = previous.get("silent", {}) if previous.get("v") == STALLED_CURSOR_VERSION else {}
    failed: list[str] = []
    for holder in silent:
        if seen_before.get(holder.holder) != holder.last_renewed_at.isoformat():
            continue
        run = context.instance.get_run_by_id(holder.holder)
        if run is None or run.status != dg.DagsterRunStatus.STARTED:
            continue  # finished runs' leases are taken over by the next run of the hour
        message = (
            f"the run's worker stopped refreshing its {holder.hours} hour lease(s) at "
            f"{holder.last_renewed_at.isoformat()} (killed, out of memory or its node lost); "
            "marking the run failed so that its retry archives the hours it did not finish"
        )
        context.instance.report_run_failed(run, message)
        context.log.warning(f"run {holder.holder}: {message}")
        failed.append(holder.holder)
    context.update_cursor(
        json.dumps(
            {
                "v": STALLED_CURSOR_VERSION,
                "silent": {h.holder: h.last_renewed_at.isoformat() for h in silent},
            }
        )
    )
    if failed:
        return dg.SkipReason(f"failed {len(failed)} stalled run(s): {', '.join(failed)}")
    return dg.SkipReason(
        f"no stalled run ({len(silent)} silent lease holder(s) being watched)"
        if silent
        else "no stalled run"
    )


@dg.run_failure_sensor(
    name="archive_failures_sensor",
    monitored_jobs=list(HOURLY_ARCHIVES_JOBS),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Records the hours a failed archive run did not archive (why, and which run) in the "
        "application database, so the API reports them failed rather than pending: the run "
        "records the hours it saw fail itself, this covers a run that died before it could."
    ),
)
def archive_failures_sensor(
    context: dg.RunFailureSensorContext, database: DatabaseResource
) -> None:
    run = context.dagster_run
    keys = run_partition_keys(context.instance, run)
    archived = {
        record.partition_key
        for record in context.instance.get_records_for_run(
            run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION, limit=len(keys) + 1
        ).records
    }
    unarchived = [parse_archive_partition_key(key) for key in keys if key not in archived]
    if not unarchived:
        return
    message = run_failure_message(context.instance, run.run_id) or context.failure_event.message
    cause = f"the run failed before this hour was archived: {message}"
    with database.session() as session:
        enabled = enabled_among(session, {tenant_id for tenant_id, _ in unarchived})
        already = recorded_by_run(session, run.run_id, unarchived)
        failures = [
            HourFailure(tenant_id, hour, run.run_id, cause)
            for tenant_id, hour in unarchived
            if tenant_id in enabled and (tenant_id, hour) not in already
        ]
        record_hour_failures(session, failures, datetime.now(UTC))
    context.log.info(
        f"run {run.run_id}: {len(unarchived)} hour(s) not archived, {len(failures)} recorded "
        f"as failed now ({len(already)} recorded by the run itself)"
    )


def run_partition_keys(instance: dg.DagsterInstance, run: dg.DagsterRun) -> list[str]:
    """The archive partitions a run was to archive: its range (a rectangle of tenants x hours of
    one shard) but the tenants it steps over, or its single partition."""
    start, end = run.tags.get(RANGE_START_TAG), run.tags.get(RANGE_END_TAG)
    if start and end:
        skipped = stepped_over(run.tags)
        partitions = shard_partitions(tenant_shard(parse_archive_partition_key(start)[0]))
        return [
            key
            for key in partitions.get_partition_keys_in_range(
                dg.PartitionKeyRange(start, end), dynamic_partitions_store=instance
            )
            if parse_archive_partition_key(key)[0] not in skipped
        ]
    single = run.tags.get("dagster/partition")
    return [single] if single else []
