"""The tenants' endpoints: a day's download links, and the download link itself.

Every links request and every download attempt is audited, whatever its outcome, including the
ones that prove no tenant (a missing token, a tampered link): those are recorded without a
tenant and only the host can read them. Handlers are synchronous and run in the worker thread
pool: the database, S3 and the Dagster instance are blocking clients, and running them on the
event loop would make every client wait for the slowest request.
"""

import logging
import re
from datetime import UTC, date, datetime
from typing import Annotated

from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.params import PathParameter, QueryParameter
from litestar.response import Redirect
from minio.error import S3Error

from recordings.catalog import is_enabled
from recordings.db.engine import session_scope
from recordings.db.models import TenantRecordingSettings
from recordings.downloads import AttemptContext, record_attempt, try_grant_download
from recordings.keys import day_hours
from recordings.links import LinkError
from recordings.retention import deleted_hours
from recordings.tokens import Principal
from recordings_api.archives.schemas import DayLinks, HourEntry
from recordings_api.archives.services import HourStatus, day_statuses
from recordings_api.auth import authenticate
from recordings_api.errors import ApiError, error_responses
from recordings_api.state import ApiState
from recordings_api.wire import client_of, iso_utc

logger = logging.getLogger("recordings_api")

BASE = "/api/v1/daily-conversation-audio-recordings"
DOWNLOADS = f"{BASE}/downloads"


_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _parse_day(value: str | None) -> date:
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


def _record(api: ApiState, context: AttemptContext, action: str, error: ApiError) -> None:
    record_attempt(api.engine, context, action=action, outcome=error.code, status=error.status)


class DayLinksController(Controller):
    path = BASE
    tags = ("tenant",)

    @get(
        "/",
        operation_id="listDailyConversationAudioRecordings",
        summary="Download links for the 24 hourly archives of a UTC day",
        description="Needs a bearer token with the tenant claim and the read permission. "
        "Always 24 entries, hour 0 to 23; available hours carry a signed link valid 24 hours "
        "and the archive's size, SHA-256 and counts.",
        responses=error_responses(400, 401, 403),
        security=[{"BearerToken": []}],
        sync_to_thread=True,
    )
    def list_day(
        self,
        request: Request,
        api: NamedDependency[ApiState],
        utc_day: Annotated[
            str | None,
            QueryParameter(
                name="utcDay",
                description="A past UTC day, YYYY-MM-DD",
                max_length=64,
            ),
        ] = None,
    ) -> DayLinks:
        address, agent = client_of(request)
        context = AttemptContext("", None, client_address=address, user_agent=agent)
        try:
            principal = authenticate(request, api.settings.tokens)
        except ApiError as error:
            _record(api, context, "list_links", error)
            raise
        context = AttemptContext(
            principal.tenant_id or "", principal.subject, client_address=address, user_agent=agent
        )
        try:
            tenant_id = self._tenant_with_permission(api, principal)
            day = _parse_day(utc_day)
        except ApiError as error:
            _record(api, context, "list_links", error)
            raise
        context = AttemptContext(
            tenant_id, principal.subject, utc_day=day, client_address=address, user_agent=agent
        )
        with session_scope(api.engine) as session:
            settings = session.get(TenantRecordingSettings, tenant_id)
            retention_days = settings.retention_days if settings and settings.enabled else None
        if retention_days is None:
            error = ApiError(
                403,
                "feature_disabled",
                "daily conversation audio recordings are not enabled for this tenant",
            )
            _record(api, context, "list_links", error)
            raise error
        now = datetime.now(UTC)
        deleted = deleted_hours(api.engine, tenant_id, day_hours(day))
        try:
            statuses = day_statuses(
                api.instance, tenant_id, day, retention_days, now, api.evidence_cache, deleted
            )
        except Exception as exc:
            logger.warning("Dagster instance lookup failed for %s %s", tenant_id, day, exc_info=exc)
            error = ApiError(
                503,
                "dagster_unavailable",
                "the archive catalogue (Dagster instance) is unreachable; retry in a minute",
                {"Retry-After": "30"},
            )
            _record(api, context, "list_links", error)
            raise error from exc
        body = DayLinks(
            tenant_id=tenant_id,
            utc_day=day.isoformat(),
            hours=[self._entry(api, tenant_id, principal.subject, s, now) for s in statuses],
        )
        record_attempt(api.engine, context, action="list_links", outcome="listed", status=200)
        return body

    @staticmethod
    def _refuse_another_tenants_token(
        api: ApiState, request: Request, link_tenant: str, address: str | None, agent: str | None
    ) -> None:
        """A link needs no token, but a client that sends one says who it acts for: a valid
        token of another tenant presenting this link is refused, so that one tenant's client
        can neither spend another tenant's downloads nor be recorded as that tenant's. It is
        audited under the token's tenant, without the link's hour or object."""
        if "authorization" not in request.headers:
            return
        try:
            principal = authenticate(request, api.settings.tokens)
        except ApiError:
            return  # not a credential: the link alone decides, as without a header
        if principal.tenant_id is None or principal.tenant_id == link_tenant:
            return
        error = ApiError(
            403,
            "link_foreign_tenant",
            "this download link belongs to another tenant than the bearer token sent with it",
        )
        context = AttemptContext(
            principal.tenant_id, principal.subject, client_address=address, user_agent=agent
        )
        _record(api, context, "download", error)
        raise error

    @staticmethod
    def _tenant_with_permission(api: ApiState, principal: Principal) -> str:
        permission = api.settings.tokens.read_permission
        if not principal.tenant_id or not principal.has(permission):
            raise ApiError(
                403,
                "permission_missing",
                f"the token needs a tenant and the {permission} permission",
            )
        return principal.tenant_id

    @staticmethod
    def _entry(
        api: ApiState, tenant_id: str, subject: str, status: HourStatus, now: datetime
    ) -> HourEntry:
        entry = HourEntry(
            hour=status.hour.hour, hour_start=iso_utc(status.hour), status=status.status
        )
        evidence = status.evidence
        if evidence is None:
            return entry
        expires = now + api.settings.link_ttl
        link = api.settings.link_signer.sign(
            tenant_id=tenant_id, hour=status.hour, expires_at=expires, issued_to=subject
        )
        entry.url = f"{api.settings.public_base_url}{DOWNLOADS}/{link}"
        entry.expires_at = iso_utc(expires)
        entry.size_bytes = evidence.size_bytes
        entry.sha256 = evidence.sha256
        entry.recording_count = evidence.recording_count
        entry.conversation_count = evidence.conversation_count
        entry.failed_recording_count = evidence.failed_recording_count
        return entry

    @get(
        "/downloads/{token:str}",
        operation_id="downloadDailyConversationAudioRecording",
        summary="Redirect to one hourly archive (signed link, counted, audited)",
        description="The `url` of an available hour. Needs no bearer token: the link itself is "
        "the credential, bound to one tenant's one archive (sent with another tenant's bearer "
        "token, it is refused). Each success counts against the "
        "tenant's downloads per rolling hour and redirects to a presigned S3 URL valid a few "
        "minutes, so the bytes come straight from the object store.",
        status_code=307,
        response_description="Redirect (`Location`) to a short-lived presigned S3 GET URL",
        responses=error_responses(400, 401, 403, 410, 429),
        sync_to_thread=True,
    )
    def download(
        self,
        request: Request,
        api: NamedDependency[ApiState],
        token: Annotated[str, PathParameter(description="The signed link token", max_length=2048)],
    ) -> Redirect:
        address, agent = client_of(request)
        try:
            grant = api.settings.link_signer.verify(token)
        except LinkError as exc:
            error = ApiError(401, f"link_{exc.reason}", str(exc))
            _record(
                api, AttemptContext("", client_address=address, user_agent=agent), "download", error
            )
            raise error from None
        self._refuse_another_tenants_token(api, request, grant.tenant_id, address, agent)
        context = AttemptContext(
            grant.tenant_id,
            grant.issued_to,
            hour=grant.hour,
            object_key=grant.object_key,
            client_address=address,
            user_agent=agent,
        )
        with session_scope(api.engine) as session:
            enabled = is_enabled(session, grant.tenant_id)
        if not enabled:
            error = ApiError(
                403,
                "feature_disabled",
                "daily conversation audio recordings are disabled for this tenant",
            )
            _record(api, context, "download", error)
            raise error
        try:
            api.s3.stat_object(api.settings.s3.archive_bucket, grant.object_key)
        except S3Error as exc:
            if exc.code not in {"NoSuchKey", "NoSuchObject"}:
                raise
            error = ApiError(410, "archive_gone", "this archive no longer exists (retention)")
            _record(api, context, "download", error)
            raise error from None
        decision = try_grant_download(
            api.engine,
            context,
            limit=api.settings.download_limit,
            window=api.settings.download_window,
        )
        if not decision.granted:
            raise ApiError(
                429,
                "rate_limited",
                f"at most {decision.limit} downloads per hour for this tenant; retry in "
                f"{decision.retry_after_seconds} s",
                {"Retry-After": str(decision.retry_after_seconds)},
            )
        url = api.public_s3.presigned_get_object(
            api.settings.s3.archive_bucket,
            grant.object_key,
            expires=api.settings.presigned_ttl,
        )
        return Redirect(url, status_code=307)
