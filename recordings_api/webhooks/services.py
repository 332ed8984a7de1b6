"""What the webhook endpoints do, for a tenant's own token or for the host on its behalf.

The URL is checked before anything is stored (https only; its name must resolve to public
addresses; `recordings.webhooks.delivery.check_url`, which the delivery repeats on every
attempt). Changes to a tenant's webhook run with the tenant's row locked (the write lock on
SQLite), so two registrations racing make one webhook and one secret, not an integrity error.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from litestar import Request
from litestar.di import NamedDependency
from sqlalchemy.orm import Session, selectinload

from recordings.catalog import is_enabled
from recordings.db.engine import exclusive_session, session_scope
from recordings.db.models import Tenant, WebhookEndpoint, WebhookEvent
from recordings.webhooks import delivery, outbox
from recordings.webhooks.events import (
    CANCELLED,
    EVENT_TYPES,
    PENDING,
    TEST_EVENT,
    new_event,
    webhook_test_data,
)
from recordings.webhooks.signing import derive_secret, new_salt
from recordings_api.auth import principal_of
from recordings_api.errors import ApiError
from recordings_api.settings import ApiSettings
from recordings_api.state import ApiState
from recordings_api.webhooks.schemas import (
    Webhook,
    WebhookAttemptEntry,
    WebhookDeliveryPage,
    WebhookEventEntry,
    WebhookTestQueued,
)
from recordings_api.wire import checked_tenant_id, iso_utc

# How long the previous secret keeps signing after a rotation: a day for the receiver to switch.
PREVIOUS_SECRET_GRACE = timedelta(hours=24)
MAX_PAGE = 100


def _optional_time(moment: datetime | None) -> str | None:
    return iso_utc(moment) if moment is not None else None


def _not_registered(tenant_id: str) -> ApiError:
    return ApiError(
        404,
        "webhook_not_registered",
        f"tenant {tenant_id!r} has no webhook; PUT one with its https url",
    )


def _test_pending(previous: WebhookEvent) -> ApiError:
    return ApiError(
        409,
        "webhook_test_pending",
        f"the previous test event {previous.id} is still pending: it is due now and is "
        "delivered within a minute. Follow it in GET .../webhook/deliveries and send another "
        "test once it is delivered or failed",
    )


def _event_entry(event: WebhookEvent) -> WebhookEventEntry:
    return WebhookEventEntry(
        id=event.id,
        type=event.event_type,
        created_at=iso_utc(event.created_at),
        status=event.status,
        attempt_count=event.attempt_count,
        next_attempt_at=_optional_time(event.next_attempt_at),
        delivered_at=_optional_time(event.delivered_at),
        attempts=[
            WebhookAttemptEntry(
                attempted_at=iso_utc(attempt.attempted_at),
                url=attempt.url,
                address=attempt.address,
                outcome=attempt.outcome,
                status_code=attempt.status_code,
                duration_ms=attempt.duration_ms,
                detail=attempt.detail,
            )
            for attempt in event.attempts
        ],
    )


@dataclass(frozen=True)
class WebhookService:
    """A tenant's webhook, managed by `actor` (the token's subject; `host:<subject>` when the
    host acts on the tenant's behalf)."""

    engine: sa.Engine
    settings: ApiSettings
    webhook_key: bytes
    actor: str
    by_host: bool

    def _body(self, row: WebhookEndpoint, *, with_secret: bool = False) -> Webhook:
        return Webhook(
            tenant_id=row.tenant_id,
            url=row.url,
            created_at=iso_utc(row.created_at),
            created_by=row.created_by,
            updated_at=iso_utc(row.updated_at),
            updated_by=row.updated_by,
            event_types=list(EVENT_TYPES),
            secret_rotated_at=_optional_time(row.secret_rotated_at),
            previous_secret_expires_at=_optional_time(row.previous_secret_expires_at),
            secret=derive_secret(self.webhook_key, row.secret_salt) if with_secret else None,
        )

    def _locked_tenant(self, session: Session, tenant_id: str) -> None:
        """Lock the tenant's row for this transaction; the host learns of a tenant that does
        not exist (a tenant's token names its own, which reads as not registered)."""
        checked_tenant_id(tenant_id)
        tenant = session.get(Tenant, tenant_id, with_for_update=True)
        if tenant is None and self.by_host:
            raise ApiError(404, "unknown_tenant", f"tenant {tenant_id!r} does not exist")

    def _endpoint(self, session: Session, tenant_id: str) -> WebhookEndpoint:
        if self.by_host:
            checked_tenant_id(tenant_id)
            if session.get(Tenant, tenant_id) is None:
                raise ApiError(404, "unknown_tenant", f"tenant {tenant_id!r} does not exist")
        row = session.get(WebhookEndpoint, tenant_id)
        if row is None:
            raise _not_registered(tenant_id)
        return row

    def register(self, tenant_id: str, url: str) -> tuple[Webhook, bool]:
        """Register the webhook or change its URL; True when it was created (the answer then
        carries the new secret)."""
        checked_tenant_id(tenant_id)
        try:
            delivery.check_url(
                url,
                allow_loopback=self.settings.webhook_allow_loopback,
                resolver=self.settings.webhook_resolver or delivery.resolve,
            )
        except delivery.UnsafeWebhookUrl as exc:
            raise ApiError(422, exc.code, str(exc)) from None
        now = datetime.now(UTC)
        with exclusive_session(self.engine) as session:
            self._locked_tenant(session, tenant_id)
            if not is_enabled(session, tenant_id):
                raise ApiError(
                    403,
                    "feature_disabled",
                    "daily conversation audio recordings are not enabled for this tenant; "
                    "the host enables them (PUT .../settings) before a webhook can be registered",
                )
            row = session.get(WebhookEndpoint, tenant_id)
            created = row is None
            if row is None:
                row = WebhookEndpoint(
                    tenant_id=tenant_id,
                    url=url,
                    secret_salt=new_salt(),
                    created_at=now,
                    created_by=self.actor,
                    updated_at=now,
                    updated_by=self.actor,
                )
                session.add(row)
            else:
                row.url, row.updated_at, row.updated_by = url, now, self.actor
            session.flush()
            return self._body(row, with_secret=created), created

    def read(self, tenant_id: str) -> Webhook:
        with session_scope(self.engine) as session:
            return self._body(self._endpoint(session, tenant_id))

    def remove(self, tenant_id: str) -> None:
        """Remove the webhook and cancel its pending events: nothing is left to deliver them
        to. Delivered and failed events stay readable in the deliveries listing."""
        with exclusive_session(self.engine) as session:
            self._locked_tenant(session, tenant_id)
            session.delete(self._endpoint(session, tenant_id))
            session.execute(
                sa.update(WebhookEvent)
                .where(WebhookEvent.tenant_id == tenant_id, WebhookEvent.status == PENDING)
                .values(status=CANCELLED, next_attempt_at=None)
            )

    def rotate(self, tenant_id: str) -> Webhook:
        """A new secret, shown once; the current one keeps signing (a second signature) for
        PREVIOUS_SECRET_GRACE. Rotating again within it drops the oldest secret."""
        now = datetime.now(UTC)
        with exclusive_session(self.engine) as session:
            self._locked_tenant(session, tenant_id)
            row = self._endpoint(session, tenant_id)
            row.previous_secret_salt = row.secret_salt
            row.previous_secret_expires_at = now + PREVIOUS_SECRET_GRACE
            row.secret_salt = new_salt()
            row.secret_rotated_at = row.updated_at = now
            row.updated_by = self.actor
            session.flush()
            return self._body(row, with_secret=True)

    def queue_test(self, tenant_id: str) -> WebhookTestQueued:
        """Queue a `webhook.test` event, delivered like any other. One at a time, so test
        requests cannot fill the outbox: while the previous one is pending and not attempted
        yet, a new request is refused; once an attempt of it has failed, a new request makes
        it due again at once (the tenant fixed its receiver and need not wait for the retry
        schedule) and answers with its id. The tenant's row is locked, so two requests racing
        queue one event."""
        with exclusive_session(self.engine) as session:
            self._locked_tenant(session, tenant_id)
            self._endpoint(session, tenant_id)
            previous = outbox.pending_test_event(session, tenant_id)
            if previous is not None and previous.attempt_count == 0:
                raise _test_pending(previous)
            if previous is not None:
                previous.next_attempt_at = datetime.now(UTC)
                return WebhookTestQueued(
                    id=previous.id, type=previous.event_type, status=previous.status
                )
            event = new_event(
                session, tenant_id, TEST_EVENT, webhook_test_data(tenant_id), now=datetime.now(UTC)
            )
            if event is None:  # removed meanwhile
                raise _not_registered(tenant_id)
            return WebhookTestQueued(id=event.id, type=event.event_type, status=event.status)

    def deliveries(self, tenant_id: str, limit: int, cursor: str | None) -> WebhookDeliveryPage:
        """A page of the tenant's events with their attempts, newest first; the cursor is the
        previous page's last event."""
        if self.by_host:
            checked_tenant_id(tenant_id)
        with session_scope(self.engine) as session:
            if self.by_host and session.get(Tenant, tenant_id) is None:
                raise ApiError(404, "unknown_tenant", f"tenant {tenant_id!r} does not exist")
            query = (
                sa.select(WebhookEvent)
                .where(WebhookEvent.tenant_id == tenant_id)
                .options(selectinload(WebhookEvent.attempts))
                .order_by(WebhookEvent.created_at.desc(), WebhookEvent.id.desc())
                .limit(limit)
            )
            if cursor is not None:
                after = session.get(WebhookEvent, cursor)
                if after is None or after.tenant_id != tenant_id:
                    raise ApiError(
                        400, "invalid_cursor", "cursor must be a previous page's nextCursor"
                    )
                query = query.where(
                    sa.or_(
                        WebhookEvent.created_at < after.created_at,
                        sa.and_(
                            WebhookEvent.created_at == after.created_at,
                            WebhookEvent.id < after.id,
                        ),
                    )
                )
            events = [_event_entry(event) for event in session.scalars(query)]
        more = len(events) == limit
        return WebhookDeliveryPage(events=events, next_cursor=events[-1].id if more else None)


def _service(request: Request, api: ApiState, *, by_host: bool) -> WebhookService:
    key = api.settings.webhook_key
    if key is None:
        raise ApiError(
            503,
            "webhooks_not_configured",
            "webhooks are not configured on this service: the operator sets "
            "RECORDINGS_WEBHOOK_KEY (e.g. $(openssl rand -base64 32))",
        )
    principal = principal_of(request)
    subject = principal.subject or ("host" if by_host else principal.tenant_id or "tenant")
    return WebhookService(
        api.engine,
        api.settings,
        key,
        actor=f"host:{subject}" if by_host else subject,
        by_host=by_host,
    )


def provide_tenant_webhooks(request: Request, api: NamedDependency[ApiState]) -> WebhookService:
    return _service(request, api, by_host=False)


def provide_host_webhooks(request: Request, api: NamedDependency[ApiState]) -> WebhookService:
    return _service(request, api, by_host=True)
