"""The hourly archive assets: one ZIP per tenant x UTC hour, one asset per shard of tenants.

The archive is `SHARD_COUNT` assets (`hourly_conversation_audio_archive/shard_07`), each
holding the tenants `recordings.keys.tenant_shard` assigns it, so no asset's partition status
grows past what the Dagster UI answers quickly (`recordings_dagster/partitions.py`). Every
shard runs the same body, `archive_hours`.

A run may cover any rectangle of tenants x hours (the nightly schedule packs many small
tenant-days into one run and gives a heavy one its own, see `recordings/packing.py`; UI
backfills split selections their own way), so the asset walks `context.partition_keys` and
records one materialization per hour, with that hour's own metadata. An hour that fails does
not stop the others; the run fails at the end if any hour failed, and Dagster's run retries
(`dagster.yaml`) queue a retry behind the night's other runs. A retry redoes only the hours its
run group has not archived yet.

What an empty hour costs is mostly fixed: so the run claims its hours' leases, reads their
recordings and the hashes of the archives they replace in bulk (`_plan`), and logs one line
per tenant with audio and one per run, not one per hour.

The asset reads as plan (`_plan`), build (`build_hour_archives`), record (`_record_hours`),
fail (`_failure`).
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

import dagster as dg
import sqlalchemy.exc

from recordings.archive.evidence import REPLACES_SHA256, EvidenceError
from recordings.archive.hourly import HourArchive, HourJob, build_hour_archives
from recordings.catalog import (
    SourceRecording,
    enabled_among,
    recordings_in_hour,
    recordings_in_hours,
)
from recordings.failures import HourFailure, record_hour_failures
from recordings.keys import (
    HOUR_DIMENSION,
    SHARD_COUNT,
    TENANT_DIMENSION,
    archive_partition_key,
    hour_partition_key,
    parse_archive_partition_key,
)
from recordings.leases import HourLeases, LeaseLostError
from recordings.outages import describe_failure
from recordings_dagster.metadata import hour_metadata
from recordings_dagster.partitions import shard_partitions
from recordings_dagster.resources import ArchiveBuildResource, DatabaseResource, ObjectStoreResource
from recordings_dagster.tags import stepped_over
from recordings_instance.archives import (
    latest_archive_records,
    recorded_sha256,
    recorded_sha256s,
    shard_asset_key,
)


class ArchiveRunConfig(dg.Config):
    """Run options an operator can set in the launchpad."""

    redo_done_hours: bool = False
    """Rebuild hours this run group already archived (a retry skips them by default)."""


def archive_asset(shard: int) -> dg.AssetsDefinition:
    """The archive asset of `shard`: its tenants' hours, built by `archive_hours`."""

    @dg.asset(
        key=shard_asset_key(shard),
        partitions_def=shard_partitions(shard),
        group_name="daily_conversation_audio_recordings",
        output_required=False,
        backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=24),
        kinds={"s3", "python"},
        description=(
            "Hourly ZIP of a tenant's conversation audio (Opus 24 kbps, metadata.json) at "
            "tenants/{tenant}/daily-conversation-audio-recordings/{yyyy}/{MM}/{dd}/{HH}.zip, "
            f"for the tenants of shard {shard:02d} of {SHARD_COUNT} (a hash of the tenant id)"
        ),
    )
    def hourly_conversation_audio_archive_shard(
        context: dg.AssetExecutionContext,
        config: ArchiveRunConfig,
        database: DatabaseResource,
        object_store: ObjectStoreResource,
        archive_build: ArchiveBuildResource,
    ) -> Iterator[dg.Output[None]]:
        yield from archive_hours(context, config, database, object_store, archive_build)

    return hourly_conversation_audio_archive_shard


def archive_hours(
    context: dg.AssetExecutionContext,
    config: ArchiveRunConfig,
    database: DatabaseResource,
    object_store: ObjectStoreResource,
    archive_build: ArchiveBuildResource,
) -> Iterator[dg.Output[None]]:
    """Archive the run's tenant-hours, each hour recorded as its own materialization of the
    run's shard asset."""
    # A pack's range may step over tenants archived by runs of their own (recordings/packing.py).
    others = stepped_over(context.run.tags)
    if others:
        context.log.info(
            f"{len(others)} tenant(s) inside this run's range have runs of their own or none "
            f"tonight, and are not archived here: {sorted(others)}"
        )
    partition_keys = [
        key for key in context.partition_keys if parse_archive_partition_key(key)[0] not in others
    ]
    skip = set() if config.redo_done_hours else _hours_done_in_run_group(context, partition_keys)
    if skip:
        context.log.info(
            f"retry of run group: {len(skip)} of {len(partition_keys)} hours already archived, "
            "redoing only the others"
        )
    # Tenant by tenant, each tenant's hours in order: every run orders its hours the same way
    # (see recordings/leases.py), and a tenant's leases go back once its day is recorded.
    tenant_hours = sorted(
        parse_archive_partition_key(key) for key in partition_keys if key not in skip
    )
    leases = _hour_leases(context, database, archive_build)
    try:
        plan = _plan(context, tenant_hours, database, leases)
        outcomes = build_hour_archives(
            plan.jobs,
            store=object_store.archive_store(),
            workers=archive_build.worker_count(),
            temp_dir=archive_build.temp_path(),
            run_id=context.run.run_id,
        )
        try:
            archived, failed_hours = _record_hours(
                context, plan, outcomes, leases, object_store, archive_build
            )
        finally:
            outcomes.close()
    finally:
        # Stopping early (an error, a cancel): hours waiting for another run give up at once;
        # hours being built finish or fail before their leases are given back, so no other run
        # uploads while one of ours still might.
        leases.abandon_waits()
        leases.close()
    if plan.disabled:
        context.log.warning(
            f"feature disabled for {sorted(plan.disabled)}: their hours were not archived "
            "(enable the tenant's daily recordings to generate them)"
        )
    if failed_hours:
        _record_failures(context, database, failed_hours)
        raise _failure(failed_hours, archived, len(partition_keys))
    yield from ()


def _record_failures(
    context: dg.AssetExecutionContext, database: DatabaseResource, failed_hours: dict[str, str]
) -> None:
    """Record why each hour failed, so the API can tell its tenant (`recordings/failures.py`).
    If the database cannot take them now, the archive-failures sensor records the run's
    unarchived hours once the run has failed."""
    failures = [
        HourFailure(*parse_archive_partition_key(key), run_id=context.run.run_id, cause=cause)
        for key, cause in failed_hours.items()
    ]
    try:
        with database.session() as session:
            record_hour_failures(session, failures, datetime.now(UTC))
    except sqlalchemy.exc.SQLAlchemyError as exc:
        context.log.warning(
            f"could not record the failed hours in the application database "
            f"({describe_failure(exc)}); the archive-failures sensor records them later"
        )


def _hours_done_in_run_group(
    context: dg.AssetExecutionContext, partition_keys: Sequence[str]
) -> set[str]:
    """Partitions already materialized by an earlier run of this run's retry group."""
    root_run_id = context.run.root_run_id
    if root_run_id is None:  # a fresh run, not a retry or re-execution
        return set()
    group = context.instance.get_run_group(context.run.run_id)
    group_run_ids = {run.run_id for run in group[1]} if group else {root_run_id}
    group_run_ids.discard(context.run.run_id)
    previous = latest_archive_records(context.instance, partition_keys)
    return {key for key, record in previous.items() if record.run_id in group_run_ids}


def _hour_leases(
    context: dg.AssetExecutionContext,
    database: DatabaseResource,
    archive_build: ArchiveBuildResource,
) -> HourLeases:
    """This run's hour leases: another run's build of the same hour waits for them."""

    def holder_finished(run_id: str) -> bool:
        run = context.instance.get_run_by_id(run_id)
        return run is None or run.is_finished

    def announce_wait(tenant_id: str, hour: datetime, holder: str) -> None:
        context.log.warning(
            f"{archive_partition_key(tenant_id, hour)} is being archived by run {holder}; "
            "waiting for it to finish, then this run archives the hour again"
        )

    return HourLeases(
        engine=database.engine(),
        holder=context.run.run_id,
        holder_finished=holder_finished,
        lease_seconds=archive_build.hour_lease_seconds,
        on_wait=announce_wait,
    )


@dataclass(frozen=True)
class _Plan:
    """What this run builds, and what it read for those hours in bulk.

    The hours whose lease was free are claimed together, then their recordings and the
    SHA-256 of the archives they replace are read in a few queries for all of them. An hour
    another run holds is claimed, read and checked on its own once that run lets it go.
    """

    jobs: list[HourJob]
    disabled: set[str]
    replaced_sha256: dict[str, str | EvidenceError]
    """Partition key -> SHA-256 of the archive the new one replaces, for the hours leased up
    front (read under their leases: no other run can archive them meanwhile); an earlier
    materialization whose SHA-256 is not text fails its hour, as `recorded_sha256` would."""
    leased_up_front: set[str]


def _plan(
    context: dg.AssetExecutionContext,
    tenant_hours: list[tuple[str, datetime]],
    database: DatabaseResource,
    leases: HourLeases,
) -> _Plan:
    """The hours to build: all but those skipped and those of disabled tenants.

    Each hour's lease is taken before its recordings are selected and held until its
    materialization is recorded (`_record_hours`): another run of the hour waits (see
    recordings/leases.py).
    """
    try:
        with database.session() as session:
            enabled = enabled_among(session, {tenant_id for tenant_id, _ in tenant_hours})
        wanted = [(tenant_id, hour) for tenant_id, hour in tenant_hours if tenant_id in enabled]
        busy = leases.acquire_many(wanted)
        selected_at = datetime.now(UTC)
        with database.session() as session:
            recordings = recordings_in_hours(session, [key for key in wanted if key not in busy])
    except sqlalchemy.exc.SQLAlchemyError as exc:
        # Nothing was built yet; the run's retry (queued by the daemon) starts over.
        raise dg.Failure(
            description=f"no hour was archived: {describe_failure(exc)}",
            metadata={"archived_hours": 0, "cause": describe_failure(exc)},
        ) from exc
    leased_up_front = {archive_partition_key(tenant_id, hour) for tenant_id, hour in recordings}
    jobs = []
    for tenant_id, hour in wanted:
        if (tenant_id, hour) in recordings:
            found = recordings[(tenant_id, hour)]
            jobs.append(HourJob(tenant_id, hour, partial(list, found), selected_at=selected_at))
        else:
            load = partial(_recordings_in_hour, database, tenant_id, hour)
            claim = partial(leases.acquire, tenant_id, hour)
            jobs.append(HourJob(tenant_id, hour, load, claim=claim))
    return _Plan(
        jobs=jobs,
        disabled={tenant_id for tenant_id, _ in tenant_hours} - enabled,
        replaced_sha256=recorded_sha256s(context.instance, leased_up_front),
        leased_up_front=leased_up_front,
    )


def _recordings_in_hour(
    database: DatabaseResource, tenant_id: str, hour: datetime
) -> list[SourceRecording]:
    with database.session() as session:
        return recordings_in_hour(session, tenant_id, hour)


@dataclass
class _TenantTally:
    """One tenant's hours in this run, for its summary line."""

    tenant_id: str
    hours: int = 0
    recordings: int = 0
    size_bytes: int = 0

    def log(self, context: dg.AssetExecutionContext) -> None:
        # Only tenants with audio get a line of their own: a thousand empty tenant-days would
        # otherwise bury the few that matter (each hour has its materialization anyway).
        if self.recordings:
            context.log.info(
                f"{self.tenant_id}: {self.hours} hours archived, {self.recordings} "
                f"recordings, {self.size_bytes} bytes"
            )


def _record_hours(
    context: dg.AssetExecutionContext,
    plan: _Plan,
    outcomes: Iterator[tuple[HourJob, HourArchive | Exception]],
    leases: HourLeases,
    object_store: ObjectStoreResource,
    archive_build: ArchiveBuildResource,
) -> tuple[int, dict[str, str]]:
    """Record each hour as its build ends and give its lease back: the number archived, and
    the cause of each hour that failed (the other hours go on)."""
    failed_hours: dict[str, str] = {}
    archived = 0
    tally: _TenantTally | None = None
    tenants: set[str] = set()
    for index, (job, outcome) in enumerate(outcomes, start=1):
        if tally is None or tally.tenant_id != job.tenant_id:
            if tally is not None:
                tally.log(context)
            tally = _TenantTally(job.tenant_id)
            tenants.add(job.tenant_id)
        partition_key = archive_partition_key(job.tenant_id, job.hour)
        try:
            archive = _record_hour(context, plan, job, outcome, leases, object_store, archive_build)
        except Exception as exc:
            message = describe_failure(exc)
            failed_hours[partition_key] = message
            context.log.error(
                f"[{index}/{len(plan.jobs)}] {partition_key} failed, other hours continue; the "
                f"run will fail and be retried. Cause: {message}"
            )
            leases.release(job.tenant_id, job.hour)
            continue
        # Only now may another run of this hour select its recordings and upload.
        leases.release_later(job.tenant_id, job.hour)
        archived += 1
        tally.hours += 1
        tally.recordings += archive.recording_count
        tally.size_bytes += archive.size_bytes
        if archive.failed:
            context.log.warning(
                f"{partition_key}: {archive.recording_count} recordings archived, "
                f"{archive.failed_recording_count} not archivable "
                f"{archive.failure_reasons()}, {archive.size_bytes} bytes -> {archive.object_key}"
            )
    if tally is not None:
        tally.log(context)
    context.log.info(
        f"{archived} of {len(plan.jobs)} hours archived for {len(tenants)} tenant(s)"
        + (f", {len(failed_hours)} failed" if failed_hours else "")
    )
    return archived, failed_hours


def _record_hour(
    context: dg.AssetExecutionContext,
    plan: _Plan,
    job: HourJob,
    outcome: HourArchive | Exception,
    leases: HourLeases,
    object_store: ObjectStoreResource,
    archive_build: ArchiveBuildResource,
) -> HourArchive:
    """Log the hour's materialization, or raise why it must not be recorded."""
    if isinstance(outcome, Exception):
        raise outcome
    if not leases.holds(job.tenant_id, job.hour):
        raise LeaseLostError(
            "this run stopped refreshing the hour's lease for longer than "
            f"{archive_build.hour_lease_seconds} s and another run took the hour "
            "over; its archive may have replaced this one, so this one is not recorded"
        )
    partition_key = archive_partition_key(job.tenant_id, job.hour)
    metadata = hour_metadata(outcome, object_store.archive_bucket)
    # Read under the lease: another run may have archived the hour since this run started
    # (and this one waited for it).
    replaced = (
        plan.replaced_sha256.get(partition_key)
        if partition_key in plan.leased_up_front
        else recorded_sha256(context.instance, partition_key)
    )
    if isinstance(replaced, EvidenceError):
        raise replaced
    if replaced is not None:
        # The earlier archive of this hour was replaced (atomically, at the same key): a
        # rebuild after late recordings, a backfill or a manual re-run.
        metadata[REPLACES_SHA256] = replaced
    context.log_event(
        dg.AssetMaterialization(
            asset_key=context.asset_key,
            partition=partition_key,
            metadata=metadata,
            tags={
                f"dagster/partition/{TENANT_DIMENSION}": job.tenant_id,
                f"dagster/partition/{HOUR_DIMENSION}": hour_partition_key(job.hour),
            },
        )
    )
    return outcome


def _failure(failed_hours: dict[str, str], archived: int, hour_count: int) -> dg.Failure:
    """The run's failure: which hours failed and why (a retry redoes only those)."""
    return dg.Failure(
        description=(
            f"{len(failed_hours)} of {hour_count} hours failed "
            f"({archived} archived in this run); a retry will redo only the failed hours. "
            "Causes: " + "; ".join(f"{key}: {cause}" for key, cause in sorted(failed_hours.items()))
        ),
        metadata={
            "failed_hours": dg.MetadataValue.json(failed_hours),
            "archived_hours": archived,
        },
    )


ARCHIVE_ASSETS = tuple(archive_asset(shard) for shard in range(SHARD_COUNT))
"""The archive, shard by shard (`ARCHIVE_ASSETS[tenant_shard(tenant_id)]` is a tenant's)."""
