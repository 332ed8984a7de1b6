"""Sensors: each shard's tenant dynamic partitions in step with the application database, late
recordings re-archived on their shard's job, runs whose worker died failed so that their retry
comes, and tenants' webhooks: events queued in the `webhook_events` outbox, then delivered.
The outbox's database work is `recordings.webhooks.outbox`; here is what needs Dagster (the
event log's archive materializations, the sensors' cursors and logs)."""

import json
from collections.abc import Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from time import monotonic

import dagster as dg
import sqlalchemy as sa
from sqlalchemy.orm import Session

from recordings.archive.evidence import (
    GENERATED_AT,
    ArchiveEvidence,
    EvidenceError,
    optional_value,
)
from recordings.catalog import (
    enabled_among,
    enabled_tenant_ids,
    recordings_registered_since,
    tenant_ids,
)
from recordings.db.engine import exclusive_session
from recordings.db.models import ArchiveDeletion, TenantRecordingSettings
from recordings.failures import HourFailure, record_hour_failures, recorded_by_run
from recordings.keys import (
    ARCHIVE_FEATURE_PREFIX,
    SHARD_COUNT,
    archive_partition_key,
    day_hours,
    hour_partition_key,
    hour_start,
    parse_archive_partition_key,
    tenant_shard,
    tenants_by_shard,
)
from recordings.leases import silent_holders
from recordings.retention import is_kept
from recordings.webhooks import outbox
from recordings.webhooks.events import (
    CANCELLED,
    DAY_READY,
    DELIVERED,
    FAILED,
    HOUR_ARCHIVED,
    new_event,
    timestamp_text,
)
from recordings.webhooks.signing import sign
from recordings_dagster.execution import run_failure_message
from recordings_dagster.jobs import HOURLY_ARCHIVES_JOBS, tenant_archives_job_name
from recordings_dagster.partitions import (
    shard_partitions,
    tenant_partitions_name,
    tenant_partitions_of,
)
from recordings_dagster.resources import ArchiveBuildResource, DatabaseResource, WebhookResource
from recordings_dagster.schedules import tenants_in_unfinished_runs
from recordings_dagster.tags import RANGE_END_TAG, RANGE_START_TAG, TENANT_TAG, stepped_over
from recordings_instance.archives import (
    archive_asset_key,
    latest_archive_records,
    record_metadata,
    shard_asset_key,
)


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


WEBHOOKS_OFF = (
    "webhooks are off until RECORDINGS_WEBHOOK_KEY is set in the code location's environment "
    "(base64 of 32 random bytes, e.g. $(openssl rand -base64 32), the same key as the API's)"
)
WEBHOOK_EVENTS_CURSOR_VERSION = 1
ARCHIVES_PAGE_PER_SHARD = 200  # new materializations read per shard and evaluation
DAY_HISTORY_PAGE = 100
LINKS_PATH = f"/api/v1/{ARCHIVE_FEATURE_PREFIX}"
SUMMARY_ITEMS = 10  # events or deliveries a tick's summary names; the log names every one


@dataclass(frozen=True)
class _EventsCursor:
    """Where the events sensor stands: the last archive materialization (event-log storage id)
    and the last `archive_deletions` row it has looked at."""

    archives: int
    deletions: int

    def dumps(self) -> str:
        return json.dumps(
            {
                "v": WEBHOOK_EVENTS_CURSOR_VERSION,
                "archives": self.archives,
                "deletions": self.deletions,
            }
        )

    @classmethod
    def loads(cls, text: str | None) -> "_EventsCursor | None":
        data = json.loads(text) if text else {}
        if data.get("v") != WEBHOOK_EVENTS_CURSOR_VERSION:
            return None
        return cls(archives=int(data["archives"]), deletions=int(data["deletions"]))


def _current_events_cursor(instance: dg.DagsterInstance, session: Session) -> _EventsCursor:
    """The cursor of `now`: the newest archive materialization of any shard and the newest
    deletion row (one read per shard, once in the sensor's life)."""
    newest = 0
    for shard in range(SHARD_COUNT):
        latest = instance.fetch_materializations(shard_asset_key(shard), limit=1).records
        if latest:
            newest = max(newest, latest[0].storage_id)
    deletions = session.scalar(sa.select(sa.func.max(ArchiveDeletion.id))) or 0
    return _EventsCursor(archives=newest, deletions=deletions)


def new_archive_records(
    instance: dg.DagsterInstance, after: int, page: int = ARCHIVES_PAGE_PER_SHARD
) -> tuple[list[dg.EventLogRecord], int]:
    """The archive materializations recorded after storage id `after`, oldest first, at most
    `page` from each shard, and the storage id they are complete up to (the next cursor): a
    shard with more left stops the batch at its last record read, and what the other shards
    have beyond it is read again next time."""
    records: list[dg.EventLogRecord] = []
    complete_to: int | None = None
    for shard in range(SHARD_COUNT):
        result = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=shard_asset_key(shard), after_storage_id=after),
            limit=page,
            ascending=True,
        )
        records += result.records
        if result.has_more and result.records:
            last = result.records[-1].storage_id
            complete_to = last if complete_to is None else min(complete_to, last)
    if complete_to is not None:
        records = [record for record in records if record.storage_id <= complete_to]
    records.sort(key=lambda record: record.storage_id)
    if complete_to is None:
        complete_to = records[-1].storage_id if records else after
    return records, complete_to


@dataclass
class _DayArchives:
    """A tenant-day's archive history up to a storage id: each hour's first and latest
    materialization."""

    first: dict[str, int] = field(default_factory=dict)  # partition key -> storage id
    latest: dict[str, dg.EventLogRecord] = field(default_factory=dict)

    def completed_at(self) -> int | None:
        """The storage id of the materialization that gave the day its 24th hour, or None
        while an hour has never been archived."""
        return max(self.first.values()) if len(self.first) == 24 else None


def _day_archives(
    instance: dg.DagsterInstance, tenant_id: str, day: date, up_to: int
) -> _DayArchives:
    """Every materialization of the tenant-day's 24 partitions up to storage id `up_to`, read
    in pages (a day is 24 records, plus one per re-archive)."""
    keys = [archive_partition_key(tenant_id, hour) for hour in day_hours(day)]
    history = _DayArchives()
    cursor: str | None = None
    while True:
        result = instance.fetch_materializations(
            dg.AssetRecordsFilter(
                asset_key=archive_asset_key(tenant_id),
                asset_partitions=keys,
                before_storage_id=up_to + 1,
            ),
            limit=DAY_HISTORY_PAGE,
            cursor=cursor,
            ascending=True,
        )
        for record in result.records:
            if record.partition_key is not None:
                history.first.setdefault(record.partition_key, record.storage_id)
                history.latest[record.partition_key] = record
        if not result.has_more:
            return history
        cursor = result.cursor


def _day_ready_data(
    tenant_id: str, day: date, evidence: Collection[ArchiveEvidence]
) -> dict[str, object]:
    """`day.ready`'s data. The per-hour conversation counts are not summed: a conversation
    that crosses an hour is in two archives, so their sum is not the day's count."""
    return {
        "tenantId": tenant_id,
        "utcDay": day.isoformat(),
        "hours": 24,
        "recordingCount": sum(e.recording_count for e in evidence),
        "failedRecordingCount": sum(e.failed_recording_count for e in evidence),
        "linksPath": f"{LINKS_PATH}?utcDay={day.isoformat()}",
    }


def _archive_events(
    context: dg.SensorEvaluationContext,
    session: Session,
    tenant_id: str,
    day: date,
    new: Sequence[dg.EventLogRecord],
    *,
    after: int,
    up_to: int,
    now: datetime,
) -> list[outbox.Queued]:
    """The events of a tenant-day that has new materializations (`new`, storage ids in
    (`after`, `up_to`]): `day.ready` if one of them gave the day its 24th hour, `hour.archived`
    for each that re-archived an hour of a day already complete.

    Both are decided from the event log alone (which materialization completed the day), so an
    evaluation repeated after a lost cursor queues nothing new.
    """
    history = _day_archives(context.instance, tenant_id, day, up_to)
    completed_at = history.completed_at()
    if completed_at is None:
        return []
    queued: list[outbox.Queued] = []
    try:
        if completed_at > after:
            evidence = [
                ArchiveEvidence.from_metadata(record_metadata(record))
                for record in history.latest.values()
            ]
            event = new_event(
                session,
                tenant_id,
                DAY_READY,
                _day_ready_data(tenant_id, day, evidence),
                dedup_key=f"{DAY_READY}/{tenant_id}/{day.isoformat()}",
                now=now,
            )
            if event is not None:
                queued.append(outbox.Queued(event, f"{tenant_id} {day.isoformat()}"))
        for record in new:
            if record.storage_id <= completed_at or record.partition_key is None:
                continue
            _, hour = parse_archive_partition_key(record.partition_key)
            archived = ArchiveEvidence.from_metadata(record_metadata(record))
            event = new_event(
                session,
                tenant_id,
                HOUR_ARCHIVED,
                {
                    "tenantId": tenant_id,
                    "utcDay": day.isoformat(),
                    "hour": timestamp_text(hour),
                    "sha256": archived.sha256,
                    "sizeBytes": archived.size_bytes,
                    "recordingCount": archived.recording_count,
                },
                dedup_key=f"{HOUR_ARCHIVED}/{tenant_id}/{hour_partition_key(hour)}/"
                f"{record.storage_id}",
                now=now,
            )
            if event is not None:
                queued.append(outbox.Queued(event, f"{tenant_id} {timestamp_text(hour)}"))
    except EvidenceError as error:
        # An event reported by hand, or by a pipeline of another shape: nothing true to say.
        context.log.warning(
            f"no webhook event for {tenant_id} {day.isoformat()}: an archive's metadata is not "
            f"archive evidence ({error}); the integrity checks report the hour"
        )
    return queued


def _summary(count: int, noun: str, items: Sequence[str]) -> str:
    named = ", ".join(items[:SUMMARY_ITEMS])
    more = f" and {len(items) - SUMMARY_ITEMS} more" if len(items) > SUMMARY_ITEMS else ""
    return f"{count} {noun}{'' if count == 1 else 's'}: {named}{more}"


@dg.sensor(
    name="webhook_events_sensor",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Queues tenants' webhook events (for tenants with a registered endpoint): day.ready "
        "when a UTC day's 24th hour is archived, hour.archived when an hour of a complete day "
        "is archived again (late recordings), day.expired when retention deletes a day. "
        "Started, it announces what happens from then on, not the history before it."
    ),
)
def webhook_events_sensor(
    context: dg.SensorEvaluationContext, database: DatabaseResource, webhook: WebhookResource
) -> dg.SkipReason:
    if not webhook.enabled:
        return dg.SkipReason(WEBHOOKS_OFF)
    now = datetime.now(UTC)
    cursor = _EventsCursor.loads(context.cursor)
    if cursor is None:
        # Not a replay of the history: tenants hear of what happens from now on.
        with database.session() as session:
            start = _current_events_cursor(context.instance, session)
        context.update_cursor(start.dumps())
        return dg.SkipReason(
            f"started: events for archives recorded after storage id {start.archives} and "
            f"deletions after id {start.deletions}"
        )
    records, archives_to = new_archive_records(context.instance, cursor.archives)
    by_day: dict[tuple[str, date], list[dg.EventLogRecord]] = {}
    for record in records:
        if record.partition_key is not None:
            tenant_id, hour = parse_archive_partition_key(record.partition_key)
            by_day.setdefault((tenant_id, hour.date()), []).append(record)
    queued: list[outbox.Queued] = []
    with database.session() as session:
        deletions, deletions_to = outbox.new_deletions(session, cursor.deletions, now)
        tenants = outbox.tenants_with_endpoints(
            session, {t for t, _ in by_day} | {row.tenant_id for row in deletions}
        )
        for (tenant_id, day), new in sorted(by_day.items()):
            if tenant_id in tenants:
                queued += _archive_events(
                    context,
                    session,
                    tenant_id,
                    day,
                    new,
                    after=cursor.archives,
                    up_to=archives_to,
                    now=now,
                )
        queued += outbox.expiry_events(
            session, [row for row in deletions if row.tenant_id in tenants], now
        )
        described = [(q.event.id, q.describe()) for q in queued]
    context.update_cursor(_EventsCursor(archives_to, deletions_to).dumps())
    for event_id, description in described:
        context.log.info(f"queued webhook event {event_id}: {description}")
    looked_at = (
        f"{len(records)} new archive(s) and {len(deletions)} deletion(s) looked at, "
        f"{len(by_day)} tenant-day(s), {len(tenants)} with a webhook"
    )
    if not described:
        return dg.SkipReason(f"no webhook event ({looked_at})")
    return dg.SkipReason(
        f"{_summary(len(described), 'event', [d for _, d in described])} ({looked_at})"
    )


DELIVERY_WORKERS = 8  # attempts in flight at once in one evaluation
DELIVERY_TICK_SECONDS = 40.0
"""An evaluation starts no attempt that could end after this many seconds (an attempt takes
at most the resource's `timeout_seconds`): well under Dagster's 60 s sensor timeout."""


@dg.sensor(
    name="webhook_delivery_sensor",
    minimum_interval_seconds=20,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Posts due webhook events to their tenants' endpoints, signed per Standard Webhooks "
        "(webhook-id, webhook-timestamp, webhook-signature), recording every attempt; a failed "
        "attempt is retried with backoff for at least 24 hours, then the event is failed. "
        "Each tick's log lists its deliveries."
    ),
)
def webhook_delivery_sensor(
    context: dg.SensorEvaluationContext, database: DatabaseResource, webhook: WebhookResource
) -> dg.SkipReason:
    if not webhook.enabled:
        return dg.SkipReason(WEBHOOKS_OFF)
    key = webhook.key()
    started = monotonic()
    engine = database.engine()  # made once here, then shared by the attempts' threads
    with database.session() as session:
        due = outbox.due_event_ids(session, datetime.now(UTC))

    def attempt(event_id: str) -> outbox.Delivered | str | None:
        """One event's attempt: claimed, signed, posted, recorded. None when it was not
        started (the tick's time is spent: it stays due) or another evaluation took it."""
        if monotonic() - started + webhook.timeout_seconds > DELIVERY_TICK_SECONDS:
            return None
        # Write transactions from the start: on SQLite two threads that each read and then
        # write would otherwise deadlock on the lock upgrade (SQLITE_BUSY, no wait).
        with exclusive_session(engine) as session:
            claimed = outbox.claim_event(session, event_id, key, datetime.now(UTC))
        if not isinstance(claimed, outbox.Claimed):
            return claimed if claimed == CANCELLED else None
        attempted_at = datetime.now(UTC)
        headers = sign(
            claimed.secrets, claimed.event_id, int(attempted_at.timestamp()), claimed.body
        )
        outcome = webhook.deliver(claimed.url, claimed.body, headers)
        with exclusive_session(engine) as session:
            return outbox.record_attempt(session, claimed, attempted_at, outcome)

    # Several attempts in flight: a receiver that takes its whole timeout holds one worker, not
    # the tick, and a night of day.ready events drains in minutes (bench/webhooks.py).
    with ThreadPoolExecutor(DELIVERY_WORKERS, thread_name_prefix="webhook") as pool:
        results = list(pool.map(attempt, due))
    done = [result for result in results if isinstance(result, outbox.Delivered)]
    cancelled = sum(1 for result in results if result == CANCELLED)
    for delivered in done:
        _log_delivery(context, delivered, webhook.timeout_seconds)
    if cancelled:
        context.log.info(f"cancelled {cancelled} event(s) whose tenant has no webhook any more")
    if not done:
        return dg.SkipReason(
            f"no webhook delivery ({len(due)} due, {cancelled} cancelled)"
            if due
            else "no webhook event due"
        )
    left = len(due) - len(done) - cancelled
    return dg.SkipReason(
        _summary(len(done), "delivery", [d.describe() for d in done])
        + (f"; {left} more due next time" if left > 0 else "")
    )


def _log_delivery(
    context: dg.SensorEvaluationContext, delivered: outbox.Delivered, timeout_seconds: float
) -> None:
    """One line per attempt (never the secret or the signature); an error when the event has
    failed for good, saying since when and what the tenant should check."""
    line = f"webhook {delivered.describe()}"
    detail = f" ({delivered.outcome.detail})" if delivered.outcome.detail else ""
    if delivered.status == DELIVERED:
        context.log.info(line)
    elif delivered.status == FAILED:
        since = delivered.failing_since
        context.log.error(
            f"{line}{detail}; event failed: the endpoint {delivered.claimed.url} has been failing "
            f"since {since.isoformat() if since else 'its first attempt'} and the retries are "
            "exhausted. The tenant should check that the URL is right, that its name resolves "
            "to a public address, that its certificate is valid, and that it answers 2xx within "
            f"{timeout_seconds:g} s; the event's attempts are recorded"
        )
    else:
        when = delivered.next_attempt_at.isoformat() if delivered.next_attempt_at else "-"
        context.log.warning(f"{line}{detail}; next attempt at {when}")
