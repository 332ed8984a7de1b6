"""Asset checks on the hourly archives: the evidence operators look at every morning.

They judge one UTC day (the run's `recordings/utc_day` tag, which the 06:00 UTC schedule sets to
yesterday; yesterday by default), for every tenant with the feature enabled:

- `day_complete` (error): all 24 hours of the day have an archive.
- `archives_intact` (error): each archive's object has the size and SHA-256 its
  materialization recorded, the ZIP opens, every entry's CRC holds, and its `metadata.json`
  matches the ZIP (see `recordings.archive.verify`).
- `unarchivable_recordings` (warning): recordings that could not be archived, with the count
  and the reasons, so a compliance gap is seen even though the hour itself succeeded; and
  recordings archived truncated or from a source object that differs from its registration
  (`source_changed`: replaced or cut after the platform registered it).

Each shard's asset has the three checks, each covering the enabled tenants of that shard
(`recordings.keys.tenant_shard`). They run in their own job (`integrity_checks_job`, every
shard's checks), not in the nightly runs: a nightly run covers a few tenants, the checks cover
the whole day.
"""

import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg

from recordings.archive.evidence import (
    FAILED_RECORDING_COUNT,
    FAILURE_REASONS,
    SOURCE_CHANGED_RECORDING_COUNT,
    TRUNCATED_RECORDING_COUNT,
    ArchiveEvidence,
    EvidenceError,
    optional_value,
)
from recordings.archive.verify import verify_archive
from recordings.catalog import enabled_tenant_ids
from recordings.keys import SHARD_COUNT, archive_partition_key, day_hours, tenant_shard
from recordings_dagster.resources import DatabaseResource, ObjectStoreResource
from recordings_instance.archives import latest_archive_records, record_metadata, shard_asset_key

DAY_TAG = "recordings/utc_day"
KEYS_PER_QUERY = 2400  # 100 tenant-days: keeps the IN list far below database limits
MAX_LISTED = 50  # problems listed in the check's metadata; the counts cover all


@dataclass(frozen=True)
class DayArchive:
    tenant_id: str
    hour: datetime
    metadata: dict[str, object]  # as recorded, plain values (recordings.archive.evidence)


def checked_day(context: dg.AssetCheckExecutionContext) -> date:
    tag = context.run.tags.get(DAY_TAG)
    return date.fromisoformat(tag) if tag else (datetime.now(UTC) - timedelta(days=1)).date()


def day_archives(
    instance: dg.DagsterInstance, tenant_ids: list[str], day: date
) -> tuple[dict[str, list[datetime]], list[DayArchive]]:
    """For the day: each tenant's hours without an archive, and the latest archive of every
    hour that has one (with its materialization metadata)."""
    wanted = {
        archive_partition_key(tenant, hour): (tenant, hour)
        for tenant in tenant_ids
        for hour in day_hours(day)
    }
    keys = sorted(wanted)
    archives: list[DayArchive] = []
    for start in range(0, len(keys), KEYS_PER_QUERY):
        chunk = keys[start : start + KEYS_PER_QUERY]
        for key, record in latest_archive_records(instance, chunk).items():
            if record.asset_materialization is None or key not in wanted:
                continue
            tenant, hour = wanted[key]
            archives.append(DayArchive(tenant, hour, record_metadata(record)))
    present = {(a.tenant_id, a.hour) for a in archives}
    missing: dict[str, list[datetime]] = {}
    for tenant, hour in wanted.values():
        if (tenant, hour) not in present:
            missing.setdefault(tenant, []).append(hour)
    return missing, archives


def _enabled(database: DatabaseResource, shard: int) -> list[str]:
    """The enabled tenants of `shard`."""
    with database.session() as session:
        return [t for t in enabled_tenant_ids(session) if tenant_shard(t) == shard]


def day_complete(
    context: dg.AssetCheckExecutionContext, database: DatabaseResource, shard: int
) -> dg.AssetCheckResult:
    day = checked_day(context)
    tenants = _enabled(database, shard)
    missing, _ = day_archives(context.instance, tenants, day)
    missing_hours = sum(len(hours) for hours in missing.values())
    return dg.AssetCheckResult(
        passed=not missing,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"{day}: all {len(tenants)} enabled tenants have 24 hours"
            if not missing
            else f"{day}: {missing_hours} hour(s) missing for {len(missing)} tenant(s); "
            "see the failed runs, or launch a backfill for them"
        ),
        metadata={
            "utc_day": day.isoformat(),
            "enabled_tenants": len(tenants),
            "incomplete_tenants": len(missing),
            "missing_hours": missing_hours,
            "missing": dg.MetadataValue.json(
                {
                    tenant: [hour.strftime("%H:00") for hour in hours]
                    for tenant, hours in sorted(missing.items())[:MAX_LISTED]
                }
            ),
        },
    )


def _verified(
    object_store: ObjectStoreResource, archives: list[DayArchive]
) -> Iterator[tuple[DayArchive, list[str]]]:
    client = object_store.client()
    with tempfile.TemporaryDirectory(prefix="archive-check-") as folder:
        path = Path(folder) / "archive.zip"
        for archive in archives:
            try:
                evidence = ArchiveEvidence.from_metadata(archive.metadata)
            except EvidenceError as error:  # nothing to verify the object against
                yield archive, [f"its materialization recorded no usable evidence: {error}"]
                continue
            key = evidence.object_key
            try:
                client.fget_object(object_store.archive_bucket, key, str(path))
            except Exception as exc:  # reported as a problem of this archive
                yield archive, [f"cannot read s3://{object_store.archive_bucket}/{key}: {exc}"]
                continue
            yield (
                archive,
                verify_archive(
                    path,
                    tenant_id=archive.tenant_id,
                    hour=archive.hour,
                    expected_sha256=evidence.sha256,
                    expected_size=evidence.size_bytes,
                ),
            )
            path.unlink(missing_ok=True)


def archives_intact(
    context: dg.AssetCheckExecutionContext,
    database: DatabaseResource,
    object_store: ObjectStoreResource,
    shard: int,
) -> dg.AssetCheckResult:
    day = checked_day(context)
    _, archives = day_archives(context.instance, _enabled(database, shard), day)
    broken: dict[str, list[str]] = {}
    for archive, problems in _verified(object_store, archives):
        if problems:
            broken[archive_partition_key(archive.tenant_id, archive.hour)] = problems
    if broken:
        context.log.error(f"{len(broken)} archive(s) of {day} failed verification: {broken}")
    return dg.AssetCheckResult(
        passed=not broken,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"{day}: {len(archives) - len(broken)} of {len(archives)} archives intact",
        metadata={
            "utc_day": day.isoformat(),
            "archives_checked": len(archives),
            "archives_broken": len(broken),
            "problems": dg.MetadataValue.json(dict(sorted(broken.items())[:MAX_LISTED])),
        },
    )


def unarchivable_recordings(
    context: dg.AssetCheckExecutionContext, database: DatabaseResource, shard: int
) -> dg.AssetCheckResult:
    day = checked_day(context)
    _, archives = day_archives(context.instance, _enabled(database, shard), day)
    reasons: Counter[str] = Counter()
    by_tenant: Counter[str] = Counter()
    # An hour that recorded no counts (an event reported by hand) adds none here;
    # `archives_intact` reports its metadata. A count of the wrong type fails the check.
    for archive in archives:
        count = optional_value(archive.metadata, FAILED_RECORDING_COUNT, int) or 0
        if count:
            by_tenant[archive.tenant_id] += count
            hour_reasons = optional_value(archive.metadata, FAILURE_REASONS, dict) or {}
            reasons.update({str(k): int(v) for k, v in hour_reasons.items()})
    total = sum(by_tenant.values())
    truncated = sum(
        optional_value(archive.metadata, TRUNCATED_RECORDING_COUNT, int) or 0
        for archive in archives
    )
    changed: Counter[str] = Counter()
    for archive in archives:
        count = optional_value(archive.metadata, SOURCE_CHANGED_RECORDING_COUNT, int) or 0
        if count:
            changed[archive.tenant_id] += count
    source_changed = sum(changed.values())
    clean = total == 0 and truncated == 0 and source_changed == 0
    problems = [f"{n} {r}" for r, n in reasons.most_common()]
    summary = (
        f"{day}: every recording was archived whole, from the object registered"
        if clean
        else f"{day}: {total} recording(s) could not be archived"
        + (f" ({', '.join(problems)})" if problems else "")
        + (f", {truncated} archived truncated (less audio than their header declares)")
        + (
            f", {source_changed} archived from a source object that differs from its "
            "registration (source_changed: size or SHA-256; replaced or cut after it was "
            "registered: ask the platform which object is the recording)"
        )
        + "; each is listed with its reason in its hour's metadata.json"
    )
    return dg.AssetCheckResult(
        passed=clean,
        severity=dg.AssetCheckSeverity.WARN,
        description=summary,
        metadata={
            "utc_day": day.isoformat(),
            "unarchivable_recordings": total,
            "truncated_recordings": truncated,
            "source_changed_recordings": source_changed,
            "source_changed_by_tenant": dg.MetadataValue.json(
                dict(changed.most_common(MAX_LISTED))
            ),
            "reasons": dg.MetadataValue.json(dict(reasons)),
            "by_tenant": dg.MetadataValue.json(dict(by_tenant.most_common(MAX_LISTED))),
        },
    )


def shard_checks(shard: int) -> list[dg.AssetChecksDefinition]:
    """The three checks on the archive asset of `shard`, over its enabled tenants."""
    asset = shard_asset_key(shard)
    of_shard = f"(the tenants of shard {shard:02d})"

    @dg.asset_check(
        asset=asset,
        name="day_complete",
        description="Every enabled tenant has all 24 hourly archives of the day (yesterday) "
        f"{of_shard}.",
    )
    def day_complete_check(
        context: dg.AssetCheckExecutionContext, database: DatabaseResource
    ) -> dg.AssetCheckResult:
        return day_complete(context, database, shard)

    @dg.asset_check(
        asset=asset,
        name="archives_intact",
        description="Each of the day's archives has the recorded size and SHA-256, opens, its "
        f"CRCs hold, and its metadata.json matches its entries {of_shard}.",
    )
    def archives_intact_check(
        context: dg.AssetCheckExecutionContext,
        database: DatabaseResource,
        object_store: ObjectStoreResource,
    ) -> dg.AssetCheckResult:
        return archives_intact(context, database, object_store, shard)

    @dg.asset_check(
        asset=asset,
        name="unarchivable_recordings",
        description="Recordings of the day that could not be archived (missing, too large, "
        "empty, corrupt, unsupported) or were archived truncated, with the counts and the "
        f"reasons {of_shard}.",
    )
    def unarchivable_recordings_check(
        context: dg.AssetCheckExecutionContext, database: DatabaseResource
    ) -> dg.AssetCheckResult:
        return unarchivable_recordings(context, database, shard)

    return [day_complete_check, archives_intact_check, unarchivable_recordings_check]


ARCHIVE_CHECKS = [check for shard in range(SHARD_COUNT) for check in shard_checks(shard)]
