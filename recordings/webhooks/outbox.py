"""The webhook outbox's database work: which events are due, claiming one for an attempt,
recording how the attempt ended, and the retention deletions that become `day.expired` events.

Plain SQLAlchemy on the application database (no Dagster): the Dagster sensors call these from
their ticks, and they are tested here without an instance. What needs Dagster (the event log's
archive materializations, the sensors' cursors and logs) stays in `recordings_dagster.sensors`.
"""

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from recordings.db.models import ArchiveDeletion, WebhookAttempt, WebhookEndpoint, WebhookEvent
from recordings.retention import DELETED, DELETING
from recordings.webhooks import retries
from recordings.webhooks.delivery import DeliveryOutcome
from recordings.webhooks.events import (
    CANCELLED,
    DAY_EXPIRED,
    DELIVERED,
    FAILED,
    PENDING,
    TEST_EVENT,
    new_event,
)
from recordings.webhooks.signing import derive_secret

DELIVERY_BATCH = 500  # events one evaluation may attempt (DELIVERY_WORKERS at a time)
DELIVERY_LEASE = timedelta(minutes=5)
"""A claimed event is not due again before this: longer than any attempt, so only a tick that
died mid-attempt lets another tick post it again (same webhook-id, which receivers drop)."""
DELETIONS_PAGE = 2000
DELETION_SETTLE = timedelta(minutes=10)
"""A deletion row still `deleting` this long after it was requested is passed over: its
cleanup died between its S3 delete and its record (the next cleanup settles it)."""


def tenants_with_endpoints(session: Session, tenant_ids: Collection[str]) -> set[str]:
    """The tenants among `tenant_ids` with a webhook registered: only they get events."""
    if not tenant_ids:
        return set()
    return set(
        session.scalars(
            sa.select(WebhookEndpoint.tenant_id).where(
                WebhookEndpoint.tenant_id.in_(sorted(tenant_ids))
            )
        )
    )


def pending_test_event(session: Session, tenant_id: str) -> WebhookEvent | None:
    """The tenant's oldest `webhook.test` event still pending, if any. The API queues a test
    event only when there is none, so a tenant cannot fill the outbox with them (each one may
    be retried for a day)."""
    return session.scalars(
        sa.select(WebhookEvent)
        .where(
            WebhookEvent.tenant_id == tenant_id,
            WebhookEvent.event_type == TEST_EVENT,
            WebhookEvent.status == PENDING,
        )
        .order_by(WebhookEvent.created_at)
        .limit(1)
    ).first()


@dataclass(frozen=True)
class Queued:
    """An event just queued, for its producer's log line and summary."""

    event: WebhookEvent
    subject: str  # the tenant and day or hour it is about

    def describe(self) -> str:
        return f"{self.event.event_type} {self.subject}"


def new_deletions(session: Session, after: int, now: datetime) -> tuple[list[ArchiveDeletion], int]:
    """The `deleted` rows of `archive_deletions` after id `after`, in id order, and the id
    they are complete up to. A row still `deleting` (its S3 delete under way) stops the batch
    before it, so its outcome is read next time; unless it has been `deleting` longer than
    `DELETION_SETTLE`, then it is passed over."""
    rows = session.scalars(
        sa.select(ArchiveDeletion)
        .where(ArchiveDeletion.id > after)
        .order_by(ArchiveDeletion.id)
        .limit(DELETIONS_PAGE)
    ).all()
    settled: list[ArchiveDeletion] = []
    complete_to = after
    for row in rows:
        if row.state == DELETING and row.requested_at > now - DELETION_SETTLE:
            break
        complete_to = row.id
        if row.state == DELETED:
            settled.append(row)
    return settled, complete_to


def expiry_events(
    session: Session, deletions: Sequence[ArchiveDeletion], now: datetime
) -> list[Queued]:
    """One `day.expired` per tenant-day with a deletion, counting the day's hours deleted so
    far (a day is deleted in one cleanup, so that is normally all of them)."""
    days: dict[tuple[str, date], ArchiveDeletion] = {}
    for row in deletions:
        days[(row.tenant_id, row.hour.date())] = row
    queued: list[Queued] = []
    for (tenant_id, day), row in sorted(days.items()):
        midnight = datetime.combine(day, time(), UTC)
        deleted = session.scalar(
            sa.select(sa.func.count(sa.distinct(ArchiveDeletion.hour))).where(
                ArchiveDeletion.tenant_id == tenant_id,
                ArchiveDeletion.hour >= midnight,
                ArchiveDeletion.hour < midnight + timedelta(days=1),
                ArchiveDeletion.state == DELETED,
            )
        )
        event = new_event(
            session,
            tenant_id,
            DAY_EXPIRED,
            {
                "tenantId": tenant_id,
                "utcDay": day.isoformat(),
                "deletedHours": deleted or 0,
                "retentionDays": row.retention_days,
            },
            dedup_key=f"{DAY_EXPIRED}/{tenant_id}/{day.isoformat()}",
            now=now,
        )
        if event is not None:
            queued.append(Queued(event, f"{tenant_id} {day.isoformat()}"))
    return queued


@dataclass(frozen=True)
class Claimed:
    """An event claimed for one attempt, with what the attempt needs."""

    event_id: str
    tenant_id: str
    event_type: str
    body: bytes
    url: str
    secrets: list[str]  # the endpoint's current secret, and the previous one while it lasts


def due_event_ids(session: Session, now: datetime) -> list[str]:
    """Pending events whose attempt is due, the longest waiting first (at most
    `DELIVERY_BATCH`, what one evaluation may deliver)."""
    return list(
        session.scalars(
            sa.select(WebhookEvent.id)
            .where(WebhookEvent.status == PENDING, WebhookEvent.next_attempt_at <= now)
            .order_by(WebhookEvent.next_attempt_at, WebhookEvent.created_at)
            .limit(DELIVERY_BATCH)
        )
    )


def claim_event(
    session: Session, event_id: str, key: bytes, now: datetime
) -> Claimed | Literal["taken", "cancelled"]:
    """Take the event for one attempt; "taken" if another evaluation took it first,
    "cancelled" if its tenant has no endpoint any more (the event is cancelled).

    The claim is a compare-and-set: the event's due time moves `DELIVERY_LEASE` ahead only if
    it is still pending and due, and only the transaction whose update matched goes on to post.
    PostgreSQL re-checks the condition after a concurrent update commits and SQLite runs one
    writer at a time, so two evaluations (the daemon runs one at a time anyway, but a manual
    evaluation or a second daemon may not) never make the same attempt.
    """
    claimed = session.scalar(
        sa.update(WebhookEvent)
        .where(
            WebhookEvent.id == event_id,
            WebhookEvent.status == PENDING,
            WebhookEvent.next_attempt_at <= now,
        )
        .values(next_attempt_at=now + DELIVERY_LEASE)
        .returning(WebhookEvent.id)
    )
    if claimed is None:
        return "taken"
    event = session.get_one(WebhookEvent, event_id)
    endpoint = session.get(WebhookEndpoint, event.tenant_id)
    if endpoint is None:
        event.status = CANCELLED
        event.next_attempt_at = None
        return CANCELLED
    secrets = [derive_secret(key, endpoint.secret_salt)]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret_salt is not None and expires is not None and expires > now:
        secrets.append(derive_secret(key, endpoint.previous_secret_salt))
    return Claimed(
        event.id, event.tenant_id, event.event_type, event.body.encode(), endpoint.url, secrets
    )


@dataclass(frozen=True)
class Delivered:
    """How an attempt ended for the event, for the log and the summary."""

    claimed: Claimed
    outcome: DeliveryOutcome
    status: str
    next_attempt_at: datetime | None
    failing_since: datetime | None  # the first attempt, when the event has now failed

    def describe(self) -> str:
        answer = f" {self.outcome.status_code}" if self.outcome.status_code is not None else ""
        return (
            f"{self.claimed.tenant_id} {self.claimed.event_type} {self.claimed.event_id}: "
            f"{self.outcome.outcome}{answer} in {self.outcome.duration_ms} ms"
        )


def record_attempt(
    session: Session, claimed: Claimed, attempted_at: datetime, outcome: DeliveryOutcome
) -> Delivered:
    """Record the attempt and move the event on: delivered, due again per the retry schedule,
    or failed once the schedule is exhausted."""
    event = session.get_one(WebhookEvent, claimed.event_id)
    session.add(
        WebhookAttempt(
            event_id=event.id,
            attempted_at=attempted_at,
            url=claimed.url,
            address=outcome.address,
            outcome=outcome.outcome,
            status_code=outcome.status_code,
            duration_ms=outcome.duration_ms,
            detail=outcome.detail,  # at most 500 characters, as deliver() clips it
        )
    )
    event.attempt_count += 1
    event.last_attempt_at = attempted_at
    failing_since = None
    if outcome.delivered:
        event.status = DELIVERED
        event.delivered_at = attempted_at
        event.next_attempt_at = None
    else:
        event.next_attempt_at = retries.next_attempt_at(event.attempt_count, attempted_at)
        if event.next_attempt_at is None:
            event.status = FAILED
            failing_since = session.scalar(
                sa.select(sa.func.min(WebhookAttempt.attempted_at)).where(
                    WebhookAttempt.event_id == event.id
                )
            )
    return Delivered(claimed, outcome, event.status, event.next_attempt_at, failing_since)
