"""What the API knows about a tenant's day, and the tenants' two operations on it.

The pipeline records one materialization per tenant-hour with the archive's evidence in its
metadata (object key, size, SHA-256, counts; `recordings.archive.evidence`), on the archive
asset of the tenant's shard. The day's 24 keys are looked up with
`recordings_instance.archives.latest_evidence`: two indexed reads on that asset, the second only
for materializations its `EvidenceCache` does not hold yet, and one more for hours it has none
of (archives made before the shards, under the single asset of before).

Hours without a materialization are `failed` when the run that last failed to archive them
(`archive_hour_failures`, recorded by that run or by the archive-failures sensor) failed for
good, with no retry coming, and `pending` otherwise. (Dagster could name that run from one
"materialization planned" event per partition per run, but the deployment has runs plan their
partitions in one event, DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS: 24 events per
tenant-day made a 10,000-tenant night's submission take most of an hour.) Only a day with a
missing hour pays for that lookup. Hours outside the tenant's retention are `expired`.

The operations (a day's signed download links, and a download through one) each work on the
request's audited attempt (recordings_api/attempts.py): they add what they learn (the day, the
link's tenant and archive), record their success, and raise `ApiError` for a refusal, which the
app's exception hook records.
"""

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime

import dagster as dg
import sqlalchemy.exc
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from minio.error import S3Error

from recordings.archive.evidence import ArchiveEvidence, EvidenceError
from recordings.catalog import is_enabled, retention_days_if_enabled
from recordings.db.engine import session_scope
from recordings.downloads import try_grant_download
from recordings.failures import HourFailure, hour_failures
from recordings.keys import archive_partition_key, day_hours
from recordings.links import DownloadLink, LinkError
from recordings.retention import deleted_hours, is_kept
from recordings_api.archives.schemas import DayLinks, HourEntry, HourState
from recordings_api.attempts import Attempt, attempt_of
from recordings_api.auth import authenticate, principal_of, tenant_of
from recordings_api.errors import ApiError
from recordings_api.state import ApiState
from recordings_api.wire import iso_utc
from recordings_instance.archives import EvidenceCache, RecordedEvidence, latest_evidence

# Dagster's run tag saying the run-retry daemon will retry a failed run. Dagster exports no
# public name for it, only a private module does; tests/api/test_services.py pins this copy to
# Dagster's value, so an upgrade that changes it fails a test, not the API.
WILL_RETRY_TAG = "dagster/will_retry"

logger = logging.getLogger(__name__)

BASE = "/api/v1/daily-conversation-audio-recordings"
DOWNLOADS = f"{BASE}/downloads"

_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


@dataclass(frozen=True)
class HourStatus:
    hour: datetime
    status: HourState
    evidence: ArchiveEvidence | None = None  # set when available


def day_statuses(
    instance: dg.DagsterInstance,
    tenant_id: str,
    day: date,
    retention_days: int,
    now: datetime | None = None,
    cache: EvidenceCache | None = None,
    deleted: Mapping[datetime, datetime] | None = None,
    failures: Callable[[list[datetime]], Mapping[datetime, HourFailure]] | None = None,
) -> list[HourStatus]:
    """The 24 hours of `day` for `tenant_id`, each with its status and archive evidence.

    `deleted` maps hours whose archive the retention job deleted to when: such an hour is
    `expired` unless it was archived again afterwards, so raising a tenant's retention never
    makes a deleted hour look `pending`.

    An hour whose latest materialization is not readable evidence (a key missing or of the
    wrong type: an event reported by hand, or by a pipeline of another shape) is `failed`, and
    each lookup logs an error naming the partition and the key. It cannot be `available`: a
    link would come without the size and SHA-256 a client checks the download against. Nor
    `pending`: a materialization never changes, so waiting does not help; an operator re-runs
    the hour (a backfill of its partition), which records new evidence. A deletion by the
    retention job still makes it `expired`.
    """
    today = (now or datetime.now(UTC)).date()
    hours = day_hours(day)
    if not is_kept(day, retention_days, today):
        return [HourStatus(hour, "expired") for hour in hours]
    deleted = deleted or {}
    keys = {archive_partition_key(tenant_id, hour): hour for hour in hours}
    found = latest_evidence(instance, keys, cache)
    recorded = {key: r for key, r in found.items() if isinstance(r, RecordedEvidence)}
    unreadable = {key: e for key, e in found.items() if isinstance(e, EvidenceError)}
    for key, error in sorted(unreadable.items()):
        logger.error(
            "%s: the latest materialization is not archive evidence (%s); the hour is reported "
            "failed until it is archived again (backfill the partition)",
            key,
            error,
        )
    missing = [hour for key, hour in keys.items() if key not in found]
    failed_for_good = (
        _failed_for_good(instance, failures(missing)) if missing and failures else set()
    )
    failed_keys = set(unreadable) | {archive_partition_key(tenant_id, h) for h in failed_for_good}
    statuses = []
    for key, hour in keys.items():
        archive = recorded.get(key)
        deleted_at = deleted.get(hour)
        if deleted_at is not None and (
            archive is None or archive.materialized_at <= deleted_at.timestamp()
        ):
            statuses.append(HourStatus(hour, "expired"))
        elif archive is not None:
            statuses.append(HourStatus(hour, "available", archive.evidence))
        else:
            statuses.append(HourStatus(hour, "failed" if key in failed_keys else "pending"))
    return statuses


def _failed_for_good(
    instance: dg.DagsterInstance, failures: Mapping[datetime, HourFailure]
) -> set[datetime]:
    """The hours whose recorded failure is final: its run failed or was canceled, and the
    run-retry daemon is not going to retry it."""
    if not failures:
        return set()
    run_ids = sorted({failure.run_id for failure in failures.values()})
    runs = instance.get_runs(dg.RunsFilter(run_ids=run_ids))
    final = {
        run.run_id
        for run in runs
        if run.status in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)
        and run.tags.get(WILL_RETRY_TAG) != "true"
    }
    return {hour for hour, failure in failures.items() if failure.run_id in final}


def parse_day(value: str | None) -> date:
    """The day a listing asks for: a past UTC day written YYYY-MM-DD, or a 400 ApiError."""
    if not value:
        raise ApiError(400, "missing_day", "utcDay is required, e.g. ?utcDay=2025-12-12")
    # Only YYYY-MM-DD in ASCII digits: `date.fromisoformat` also reads ISO week dates
    # (2026-W01-1 is 2025-12-29) and the basic format (20260101), which would answer a day
    # the client did not write.
    if not _DAY.fullmatch(value):
        raise ApiError(400, "invalid_day", f"utcDay {value!r} must be written YYYY-MM-DD")
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise ApiError(400, "invalid_day", f"utcDay {value!r} is not a date (YYYY-MM-DD)") from None
    if day >= datetime.now(UTC).date():
        raise ApiError(400, "day_not_over", f"{day} is not over yet (UTC); ask for a past day")
    return day


class _ApplicationDatabaseError(Exception):
    """The application database failed during a day's lookup (which maps other failures to
    `dagster_unavailable`)."""

    def __init__(self, error: sqlalchemy.exc.SQLAlchemyError) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass(frozen=True)
class DayLinksService:
    """A day's 24 hours for the token's tenant, with a signed link for each available one."""

    api: ApiState
    attempt: Attempt
    tenant_id: str
    subject: str

    def list_day(self, utc_day: str | None) -> DayLinks:
        day = parse_day(utc_day)
        self.attempt.for_day(day)
        with session_scope(self.api.engine) as session:
            retention_days = retention_days_if_enabled(session, self.tenant_id)
        if retention_days is None:
            raise ApiError(
                403,
                "feature_disabled",
                "daily conversation audio recordings are not enabled for this tenant",
            )
        now = datetime.now(UTC)
        statuses = self._statuses(day, retention_days, now)
        body = DayLinks(
            tenant_id=self.tenant_id,
            utc_day=day.isoformat(),
            hours=[self._entry(status, now) for status in statuses],
        )
        self.attempt.record("listed", 200)
        return body

    def _statuses(self, day: date, retention_days: int, now: datetime) -> list[HourStatus]:
        api = self.api
        deleted = deleted_hours(api.engine, self.tenant_id, day_hours(day))

        def failures(hours: list[datetime]) -> Mapping[datetime, HourFailure]:
            try:
                with session_scope(api.engine) as session:
                    return hour_failures(session, self.tenant_id, hours)
            except sqlalchemy.exc.SQLAlchemyError as exc:
                raise _ApplicationDatabaseError(exc) from exc

        try:
            return day_statuses(
                api.instance,
                self.tenant_id,
                day,
                retention_days,
                now,
                api.evidence_cache,
                deleted,
                failures,
            )
        except _ApplicationDatabaseError as exc:
            # Not the Dagster instance: the app answers `database_unavailable` for this one.
            raise exc.error from None
        except Exception as exc:
            logger.warning(
                "Dagster instance lookup failed for %s %s", self.tenant_id, day, exc_info=exc
            )
            raise ApiError(
                503,
                "dagster_unavailable",
                "the archive catalogue (Dagster instance) is unreachable; retry in a minute",
                {"Retry-After": "30"},
            ) from exc

    def _entry(self, status: HourStatus, now: datetime) -> HourEntry:
        entry = HourEntry(
            hour=status.hour.hour, hour_start=iso_utc(status.hour), status=status.status
        )
        evidence = status.evidence
        if evidence is None:
            return entry
        settings = self.api.settings
        expires = now + settings.link_ttl
        link = settings.link_signer.sign(
            tenant_id=self.tenant_id, hour=status.hour, expires_at=expires, issued_to=self.subject
        )
        entry.url = f"{settings.public_base_url}{DOWNLOADS}/{link}"
        entry.expires_at = iso_utc(expires)
        entry.size_bytes = evidence.size_bytes
        entry.sha256 = evidence.sha256
        entry.recording_count = evidence.recording_count
        entry.conversation_count = evidence.conversation_count
        entry.failed_recording_count = evidence.failed_recording_count
        return entry


@dataclass(frozen=True)
class DownloadService:
    """One download through a signed link: checked, counted against the tenant's limit, and
    answered with a short-lived presigned S3 URL."""

    api: ApiState
    attempt: Attempt
    connection: ASGIConnection  # for a bearer token sent along with the link

    def presigned_url(self, token: str) -> str:
        link = self._verify(token)
        self._refuse_another_tenants_token(link.tenant_id)
        self.attempt.asked_by(link.tenant_id, link.issued_to)
        self.attempt.for_archive(link.hour, link.object_key)
        with session_scope(self.api.engine) as session:
            enabled = is_enabled(session, link.tenant_id)
        if not enabled:
            raise ApiError(
                403,
                "feature_disabled",
                "daily conversation audio recordings are disabled for this tenant",
            )
        self._require_archive(link.object_key)
        self._count()
        settings = self.api.settings
        return self.api.public_s3.presigned_get_object(
            settings.s3.archive_bucket, link.object_key, expires=settings.presigned_ttl
        )

    def _verify(self, token: str) -> DownloadLink:
        try:
            return self.api.settings.link_signer.verify(token)
        except LinkError as exc:
            raise ApiError(401, f"link_{exc.reason}", str(exc)) from None

    def _refuse_another_tenants_token(self, link_tenant: str) -> None:
        """A link needs no token, but a client that sends one says who it acts for: a valid
        token of another tenant presenting this link is refused, so that one tenant's client
        can neither spend another tenant's downloads nor be recorded as that tenant's. It is
        audited under the token's tenant, without the link's hour or object."""
        if "authorization" not in self.connection.headers:
            return
        try:
            principal = authenticate(self.connection, self.api.settings.tokens)
        except ApiError:
            return  # not a credential: the link alone decides, as without a header
        if principal.tenant_id is None or principal.tenant_id == link_tenant:
            return
        self.attempt.asked_by(principal.tenant_id, principal.subject)
        raise ApiError(
            403,
            "link_foreign_tenant",
            "this download link belongs to another tenant than the bearer token sent with it",
        )

    def _require_archive(self, object_key: str) -> None:
        try:
            self.api.s3.stat_object(self.api.settings.s3.archive_bucket, object_key)
        except S3Error as exc:
            if exc.code not in {"NoSuchKey", "NoSuchObject"}:
                raise
            raise ApiError(
                410, "archive_gone", "this archive no longer exists (retention)"
            ) from None

    def _count(self) -> None:
        """Count the download against the tenant's limit; the decision, granted or refused,
        is the attempt's audit entry."""
        settings = self.api.settings
        decision = try_grant_download(
            self.api.engine,
            self.attempt.context,
            limit=settings.download_limit,
            window=settings.download_window,
        )
        self.attempt.recorded = True
        if not decision.granted:
            raise ApiError(
                429,
                "rate_limited",
                f"at most {decision.limit} downloads per hour for this tenant; retry in "
                f"{decision.retry_after_seconds} s",
                {"Retry-After": str(decision.retry_after_seconds)},
            )


def provide_day_links(request: Request, api: NamedDependency[ApiState]) -> DayLinksService:
    return DayLinksService(
        api, attempt_of(request), tenant_of(request), principal_of(request).subject
    )


def provide_downloads(request: Request, api: NamedDependency[ApiState]) -> DownloadService:
    return DownloadService(api, attempt_of(request), request)
