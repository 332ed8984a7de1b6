"""Ops of the operational jobs: today, the retention cleanup.

The cleanup itself is `recordings.retention.cleanups` (plain code, tested alone); this op feeds
it the SHA-256s the archives' materializations recorded, and turns each tenant's report into
what operators see: one observation per tenant-day on the archive asset of the tenant's shard
("expired: 24 hourly archive(s) of acme on 2026-11-24 deleted by retention", with a table of the
deleted hours: partition key, object key, recorded SHA-256, when), and the run's metadata
(deleted, kept, held by a legal hold, failed). Any failure fails the run after the other tenants
are done, so the daemon's run retries try again.

Why a tenant-day and not an hour: a whole expired day at 10,000 tenants is 240,000 hours, and a
Dagster event belongs to one partition at most. Dagster's public API has no batch write for
events a step logs (`DAGSTER_EVENT_BATCH_SIZE` batches only the per-partition events of an
asset's own output, and the SQLite storage writes a batch one event at a time;
`wipe_asset_partitions` is not implemented by the SQL storages), and its SQLite event log opens
connections and commits on two database files for every event (5-11 ms of CPU): an event per
hour put the day at about 3 hours on SQLite. An event per tenant-day is 24 times fewer writes
and a fifth of the event log's growth, with the same facts in it; the evidence of record is the
`archive_deletions` row of each hour, which the API reads to answer `expired`.

The op holds pooled connections for the rest of the step (dagster-postgres otherwise opens a new
connection per statement), and the cleanup runs in a thread a little ahead, so its S3 and
database round trips overlap the event writes. Each tenant's observations are logged once its
batch is done, so a run killed halfway has recorded what it deleted so far (the database has
every deletion regardless).
"""

import contextlib
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from queue import Empty, Queue
from typing import Any, TypeVar

import dagster as dg

from recordings.archive.evidence import EvidenceError
from recordings.keys import archive_partition_key
from recordings.retention import (
    DeletedArchive,
    RecordedSha256,
    TenantCleanup,
    TenantHour,
    cleanups,
)
from recordings.storage import abort_stale_uploads
from recordings_dagster.resources import DatabaseResource, ObjectStoreResource
from recordings_instance.archives import archive_asset_key, recorded_sha256s

T = TypeVar("T")

# Far longer than any hour's build: an upload this old has no worker left to complete it.
STALE_UPLOAD_AGE = timedelta(hours=24)

# A progress line every this many tenants (a line per tenant is an event write each).
PROGRESS_EVERY = 1000


# How many tenants' reports the cleanup may get ahead of the observations being logged (two
# batches of whole days, so the next batch is always under way).
REPORTS_AHEAD = 100


def _ahead(items: Iterator[T], limit: int) -> Iterator[T]:
    """`items`, computed in a thread up to `limit` ahead of the caller.

    The cleanup's next batch (its S3 listings and delete, the database, the recorded SHA-256s)
    then runs while this step writes the previous batch's observations, one event write per
    tenant-day: both mostly wait on other processes. The op's context is used only by the
    caller's thread; the cleanup's thread reads the instance, whose storages are thread-safe
    (the webserver serves every request from one instance). An error in the thread is raised
    here; when the caller stops early, the thread stops at its next item."""
    done = object()
    queue: Queue[Any] = Queue(maxsize=limit)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                queue.put(item)
            queue.put(done)
        except BaseException as exc:  # handed to the caller, which raises it
            queue.put(_Raised(exc))

    thread = threading.Thread(target=produce, name="retention-cleanup", daemon=True)
    thread.start()
    try:
        while (item := queue.get()) is not done:
            if isinstance(item, _Raised):
                raise item.error
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            with contextlib.suppress(Empty):
                queue.get(timeout=0.1)
        thread.join()


@dataclass(frozen=True)
class _Raised:
    error: BaseException


class RetentionConfig(dg.Config):
    """Run options an operator can set in the launchpad."""

    today: str | None = None
    """The UTC date the rule is applied for (YYYY-MM-DD); default: the run's current date."""


class _Totals:
    """What the run's metadata reports, accumulated tenant by tenant (the reports themselves,
    with 240,000 deleted archives in them, are not kept)."""

    def __init__(self) -> None:
        self.tenants = self.deleted = self.kept = self.held = 0
        self.held_tenants: dict[str, int] = {}
        self.deleted_by_tenant: dict[str, int] = {}
        self.failures: list[tuple[str, str, str]] = []

    def add(self, report: TenantCleanup) -> None:
        self.tenants += 1
        self.deleted += len(report.deleted)
        self.kept += report.kept
        self.held += len(report.held)
        if report.held:
            self.held_tenants[report.tenant_id] = len(report.held)
        if report.deleted:
            self.deleted_by_tenant[report.tenant_id] = len(report.deleted)
        self.failures += [(report.tenant_id, key, reason) for key, reason in report.failures]

    def progress(self) -> str:
        return (
            f"deleted {self.deleted}, kept {self.kept}, held {self.held}, "
            f"failed {len(self.failures)}"
        )

    def summary(self) -> dict[str, Any]:
        return {
            "tenants": self.tenants,
            "deleted": self.deleted,
            "kept": self.kept,
            "held_by_legal_hold": self.held,
            "held_tenants": dg.MetadataValue.json(self.held_tenants),
            "failed": len(self.failures),
            "deleted_by_tenant": dg.MetadataValue.json(self.deleted_by_tenant),
        }


def _recorded_sha256(instance: dg.DagsterInstance) -> RecordedSha256:
    """The SHA-256s the archives' latest materializations recorded, by tenant-hour."""

    def lookup(hours: Sequence[TenantHour]) -> dict[TenantHour, str | EvidenceError]:
        keys = {archive_partition_key(tenant, hour): (tenant, hour) for tenant, hour in hours}
        return {keys[key]: sha256 for key, sha256 in recorded_sha256s(instance, keys).items()}

    return lookup


_DELETED_HOURS_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("partition", "string", description="the archive's partition key"),
        dg.TableColumn("object_key", "string"),
        dg.TableColumn("sha256", "string", description="as its materialization recorded"),
        dg.TableColumn("deleted_at", "string", description="UTC, ISO 8601"),
    ]
)


def deleted_days(report: TenantCleanup) -> dict[date, list[DeletedArchive]]:
    """The report's deleted archives by UTC day, each day's hours in order."""
    days: dict[date, list[DeletedArchive]] = {}
    for deleted in sorted(report.deleted, key=lambda archive: archive.hour):
        days.setdefault(deleted.hour.date(), []).append(deleted)
    return days


def expired_day_observation(
    tenant_id: str, day: date, deleted: Sequence[DeletedArchive]
) -> dg.AssetObservation:
    """One observation for a tenant's hours of one day that retention deleted: the event names
    the tenant and the day, and its table lists every deleted hour (partition key, object key,
    the SHA-256 its materialization recorded, when it was deleted). It is not tied to one
    partition: a Dagster event belongs to one partition at most, and an event per hour is what
    a whole day at 10,000 tenants cannot afford on SQLite (module docstring)."""
    return dg.AssetObservation(
        asset_key=archive_asset_key(tenant_id),
        description=(
            f"expired: {len(deleted)} hourly archive(s) of {tenant_id} on {day.isoformat()} "
            "deleted by retention"
        ),
        metadata={
            "status": "expired",
            "tenant": tenant_id,
            "day": day.isoformat(),
            "hours_deleted": len(deleted),
            "retention_days": deleted[0].retention_days,
            "deleted_hours": dg.MetadataValue.table(
                records=[
                    dg.TableRecord(
                        {
                            "partition": archive_partition_key(tenant_id, archive.hour),
                            "object_key": archive.object_key,
                            "sha256": archive.sha256,
                            "deleted_at": archive.deleted_at.isoformat(),
                        }
                    )
                    for archive in deleted
                ],
                schema=_DELETED_HOURS_SCHEMA,
            ),
        },
    )


def _observe_deletions(context: dg.OpExecutionContext, report: TenantCleanup) -> None:
    for day, deleted in deleted_days(report).items():
        context.log_event(expired_day_observation(report.tenant_id, day, deleted))
    if report.held:
        context.log.warning(
            f"{report.tenant_id}: legal hold kept {len(report.held)} archive(s) beyond its "
            f"{report.retention_days}-day retention"
        )


@dg.op(description="Delete archives outside each tenant's retention, with evidence.")
def apply_archive_retention(
    context: dg.OpExecutionContext,
    config: RetentionConfig,
    database: DatabaseResource,
    object_store: ObjectStoreResource,
) -> dg.Output[None]:
    today = date.fromisoformat(config.today) if config.today else datetime.now(UTC).date()
    # Pooled connections for the event writes below, as the webserver and the API hold them
    # (SQLite storage ignores this). The step's instance is this step's alone.
    context.instance.optimize_for_webserver(
        statement_timeout=60_000, pool_recycle=3600, max_overflow=2
    )
    totals = _Totals()
    reports = cleanups(
        database.engine(),
        object_store.client(),
        object_store.archive_bucket,
        today,
        recorded_sha256=_recorded_sha256(context.instance),
        run_id=context.run_id,
    )
    for report in _ahead(reports, REPORTS_AHEAD):
        _observe_deletions(context, report)
        totals.add(report)
        if totals.tenants % PROGRESS_EVERY == 0:
            context.log.info(f"{totals.tenants} tenants done: {totals.progress()}")
    # Housekeeping in the same daily pass: parts of uploads a killed worker could not abort.
    housekeeping_failures: list[tuple[str, str, str]] = []
    aborted = []
    try:
        aborted = abort_stale_uploads(
            object_store.client(),
            object_store.archive_bucket,
            "tenants/",
            older_than=STALE_UPLOAD_AGE,
            now=datetime.now(UTC),
        )
    except Exception as exc:  # reported with the run's other failures
        housekeeping_failures.append(("*", "incomplete uploads", f"{type(exc).__name__}: {exc}"))
    for upload in aborted:
        context.log.warning(
            f"aborted an incomplete upload of {upload.key} started {upload.initiated} "
            "(a worker stopped mid-upload; nothing was ever visible at the key)"
        )
    failures = totals.failures + housekeeping_failures
    if failures:
        raise dg.Failure(
            description=f"{len(failures)} archive(s) could not be deleted; the run will be "
            "retried. First: " + "; ".join(f"{t}: {k}: {r}" for t, k, r in failures[:3]),
            metadata={**totals.summary(), "failures": dg.MetadataValue.json(failures)},
        )
    return dg.Output(
        None,
        metadata={
            **totals.summary(),
            "today": today.isoformat(),
            "stale_uploads_aborted": len(aborted),
        },
    )
