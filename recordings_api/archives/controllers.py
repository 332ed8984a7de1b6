"""The tenants' endpoints: a day's download links, and the download link itself."""

from datetime import UTC, date, datetime
from typing import Annotated

from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter
from litestar.response import Redirect
from minio.error import S3Error

from recordings.catalog import is_enabled
from recordings.db.engine import session_scope
from recordings.db.models import TenantRecordingSettings
from recordings.downloads import AttemptContext, audit, try_grant_download
from recordings.links import LinkError
from recordings_api.archives.schemas import DayLinks, HourEntry
from recordings_api.archives.services import day_statuses
from recordings_api.auth import authenticate
from recordings_api.errors import ApiError
from recordings_api.state import ApiState

BASE = "/api/v1/daily-conversation-audio-recordings"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _client(request: Request) -> tuple[str | None, str | None]:
    address = request.client.host if request.client else None
    return address, request.headers.get("user-agent")


def _parse_day(value: str | None) -> date:
    if not value:
        raise ApiError(400, "missing_day", "utcDay is required, e.g. ?utcDay=2025-12-12")
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise ApiError(400, "invalid_day", f"utcDay {value!r} is not a date (YYYY-MM-DD)") from None
    if len(value) != 10:
        raise ApiError(400, "invalid_day", f"utcDay {value!r} must be written YYYY-MM-DD")
    if day >= datetime.now(UTC).date():
        raise ApiError(400, "day_not_over", f"{day} is not over yet (UTC); ask for a past day")
    return day


class DayLinksController(Controller):
    path = BASE

    @get(
        "/",
        operation_id="listDailyConversationAudioRecordings",
        summary="Download links for the 24 hourly archives of a UTC day",
    )
    async def list_day(
        self,
        request: Request,
        api: NamedDependency[ApiState],
        utc_day: Annotated[str | None, QueryParameter(name="utcDay")] = None,
    ) -> DayLinks:
        principal = authenticate(request, api.settings.tokens)
        if not principal.tenant_id or not principal.has(api.settings.tokens.read_permission):
            raise ApiError(
                403,
                "permission_missing",
                f"the token needs a tenant and the {api.settings.tokens.read_permission} "
                "permission",
            )
        day = _parse_day(utc_day)
        tenant_id = principal.tenant_id
        address, agent = _client(request)
        with session_scope(api.engine) as session:
            settings = session.get(TenantRecordingSettings, tenant_id)
            enabled = bool(settings and settings.enabled)
            context = AttemptContext(tenant_id, principal.subject, None, None, address, agent)
            audit(
                session,
                context,
                action="list_links",
                outcome="listed" if enabled else "feature_disabled",
                status=200 if enabled else 403,
            )
        if not enabled or settings is None:
            raise ApiError(
                403,
                "feature_disabled",
                "daily conversation audio recordings are not enabled for this tenant",
            )
        now = datetime.now(UTC)
        expires = now + api.settings.link_ttl
        entries = []
        for status in day_statuses(api.instance, tenant_id, day, settings.retention_days, now):
            entry = HourEntry(
                hour=status.hour.hour, hour_start=_iso(status.hour), status=status.status
            )
            if status.status == "available":
                link = api.settings.link_signer.sign(
                    tenant_id=tenant_id, hour=status.hour, expires_at=expires
                )
                meta = status.metadata
                entry.url = f"{api.settings.public_base_url}{BASE}/downloads/{link}"
                entry.expires_at = _iso(expires)
                entry.size_bytes = int(meta.get("size_bytes", 0))
                entry.sha256 = str(meta.get("sha256", ""))
                entry.recording_count = int(meta.get("recording_count", 0))
                entry.conversation_count = int(meta.get("conversation_count", 0))
                entry.failed_recording_count = int(meta.get("failed_recording_count", 0))
            entries.append(entry)
        return DayLinks(tenant_id=tenant_id, utc_day=day.isoformat(), hours=entries)

    @get(
        "/downloads/{token:str}",
        operation_id="downloadDailyConversationAudioRecording",
        summary="Redirect to one hourly archive (signed link, counted, audited)",
        status_code=307,
    )
    async def download(
        self, request: Request, api: NamedDependency[ApiState], token: FromPath[str]
    ) -> Redirect:
        address, agent = _client(request)
        try:
            grant = api.settings.link_signer.verify(token)
        except LinkError as exc:
            with session_scope(api.engine) as session:
                audit(
                    session,
                    AttemptContext("", None, None, None, address, agent),
                    action="download",
                    outcome=f"link_{exc.reason}",
                    status=401,
                )
            raise ApiError(401, f"link_{exc.reason}", str(exc)) from None
        context = AttemptContext(
            grant.tenant_id, None, grant.hour, grant.object_key, address, agent
        )
        with session_scope(api.engine) as session:
            enabled = is_enabled(session, grant.tenant_id)
            if not enabled:
                audit(session, context, action="download", outcome="feature_disabled", status=403)
        if not enabled:
            raise ApiError(
                403,
                "feature_disabled",
                "daily conversation audio recordings are disabled for this tenant",
            )
        try:
            api.s3.stat_object(api.settings.s3.archive_bucket, grant.object_key)
        except S3Error as exc:
            if exc.code not in {"NoSuchKey", "NoSuchObject"}:
                raise
            with session_scope(api.engine) as session:
                audit(session, context, action="download", outcome="gone", status=410)
            raise ApiError(
                410, "archive_gone", "this archive no longer exists (retention)"
            ) from None
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
