"""Webhook events: the body every event carries, and the outbox row that queues it.

Bodies follow the Standard Webhooks payload shape, ``{"type", "timestamp", "data"}``, as
compact JSON; the body is stored as posted, so every retry signs the same bytes. Both the API
(``webhook.test``) and the Dagster sensors (``day.ready``, ``hour.archived``, ``day.expired``)
queue events here, so the shape has one definition.
"""

import json
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from recordings.db.models import WebhookEndpoint, WebhookEvent
from recordings.webhooks.signing import new_message_id

PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"
CANCELLED = "cancelled"

TEST_EVENT = "webhook.test"
DAY_READY = "day.ready"
HOUR_ARCHIVED = "hour.archived"
DAY_EXPIRED = "day.expired"
EVENT_TYPES = (DAY_READY, HOUR_ARCHIVED, DAY_EXPIRED, TEST_EVENT)


def timestamp_text(at: datetime) -> str:
    """ISO 8601 in UTC with a ``Z``, the API's time format."""
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def event_body(event_type: str, data: dict[str, object], *, at: datetime) -> str:
    """The JSON posted for an event: its type, when it happened, and its data."""
    if at.tzinfo is None:
        raise ValueError(f"naive datetime {at!r} refused: pass a timezone-aware datetime")
    return json.dumps(
        {"type": event_type, "timestamp": timestamp_text(at), "data": data},
        separators=(",", ":"),
        ensure_ascii=False,
    )


def webhook_test_data(tenant_id: str) -> dict[str, object]:
    """The data of a ``webhook.test`` event, which only checks that delivery works."""
    return {
        "tenantId": tenant_id,
        "message": "A test event: your webhook endpoint receives and can verify our events.",
    }


def new_event(
    session: Session,
    tenant_id: str,
    event_type: str,
    data: dict[str, object],
    *,
    dedup_key: str | None = None,
    now: datetime,
) -> WebhookEvent | None:
    """Queue an event for the tenant's webhook, due at once; None when the tenant has no
    webhook registered (nobody to tell) or an event with `dedup_key` was already queued.

    The insert is ``ON CONFLICT (dedup_key) DO NOTHING``, so a producer that runs twice (a
    sensor tick retried, two ticks racing) queues the event once and its transaction goes on.
    """
    registered = session.scalar(
        sa.select(WebhookEndpoint.tenant_id).where(WebhookEndpoint.tenant_id == tenant_id)
    )
    if registered is None:
        return None
    values = {
        "id": new_message_id(),
        "tenant_id": tenant_id,
        "event_type": event_type,
        "dedup_key": dedup_key,
        "body": event_body(event_type, data, at=now),
        "created_at": now,
        "status": PENDING,
        "attempt_count": 0,
        "next_attempt_at": now,
    }
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(WebhookEvent)
        .values(values)
        .on_conflict_do_nothing(index_elements=[WebhookEvent.dedup_key])
        .returning(WebhookEvent.id)
    )
    event_id = session.scalar(statement)
    if event_id is None:
        return None
    return session.get(WebhookEvent, event_id)
