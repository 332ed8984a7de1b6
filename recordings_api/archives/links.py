"""The tenants' two operations: a day's signed download links, and a download through one.

Each works on the request's audited attempt (recordings_api/attempts.py): it adds what it learns
(the day, the link's tenant and archive), records its success, and raises `ApiError` for a
refusal, which the app's exception hook records.
"""

import logging
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from minio.error import S3Error

from recordings.catalog import is_enabled, retention_days_if_enabled
from recordings.db.engine import session_scope
from recordings.downloads import try_grant_download
from recordings.keys import day_hours
from recordings.links import DownloadLink, LinkError
from recordings.retention import deleted_hours
from recordings_api.archives.schemas import DayLinks, HourEntry
from recordings_api.archives.services import HourStatus, day_statuses
from recordings_api.attempts import Attempt, attempt_of
from recordings_api.auth import authenticate, principal_of, tenant_of
from recordings_api.errors import ApiError
from recordings_api.state import ApiState
from recordings_api.wire import iso_utc

logger = logging.getLogger("recordings_api")

BASE = "/api/v1/daily-conversation-audio-recordings"
DOWNLOADS = f"{BASE}/downloads"

_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


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
        try:
            return day_statuses(
                api.instance, self.tenant_id, day, retention_days, now, api.evidence_cache, deleted
            )
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
