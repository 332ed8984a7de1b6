"""Webhook bodies (camelCase on the wire); unknown fields are refused.

A tenant's signing secret appears in exactly two answers: the registration that created the
webhook and a rotation. It is never stored (the database holds its salt), so it cannot be read
back: a tenant who lost it rotates.
"""

from typing import Annotated

import msgspec

from recordings.webhooks.events import EVENT_TYPES

ISO_UTC = msgspec.Meta(description="ISO 8601 UTC")


class WebhookRegistration(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    """Where to post the tenant's events."""

    url: Annotated[
        str,
        msgspec.Meta(
            min_length=1,
            max_length=2048,
            description="An https URL whose name resolves to public addresses only",
        ),
    ]


class Webhook(msgspec.Struct, rename="camel", omit_defaults=True):
    """A tenant's webhook; `secret` only in the answer that created or rotated it."""

    tenant_id: str
    url: str
    created_at: Annotated[str, ISO_UTC]
    created_by: Annotated[str, msgspec.Meta(description="The token subject (host:<subject>)")]
    updated_at: Annotated[str, ISO_UTC]
    updated_by: str
    event_types: Annotated[
        list[str], msgspec.Meta(description=f"The events posted: {', '.join(EVENT_TYPES)}")
    ]
    secret_rotated_at: Annotated[str | None, ISO_UTC] = None
    previous_secret_expires_at: Annotated[
        str | None,
        msgspec.Meta(description="Until then events carry a second signature, by the old secret"),
    ] = None
    secret: Annotated[
        str | None,
        msgspec.Meta(
            description="The signing secret (whsec_...), shown once: store it now. Verify "
            "events with it per Standard Webhooks (webhook-id, webhook-timestamp, "
            "webhook-signature)"
        ),
    ] = None


class WebhookTestQueued(msgspec.Struct, rename="camel"):
    """A queued event; its delivery shows in the deliveries listing."""

    id: Annotated[str, msgspec.Meta(description="The event's webhook-id")]
    type: str
    status: str


class WebhookAttemptEntry(msgspec.Struct, rename="camel", omit_defaults=True):
    """One delivery attempt."""

    attempted_at: Annotated[str, ISO_UTC]
    url: str
    outcome: Annotated[str, msgspec.Meta(description="delivered, or the error's code")]
    duration_ms: int
    detail: str
    address: Annotated[str | None, msgspec.Meta(description="The IP address connected to")] = None
    status_code: Annotated[int | None, msgspec.Meta(description="The receiver's answer")] = None


class WebhookEventEntry(msgspec.Struct, rename="camel", omit_defaults=True):
    """One event and its delivery: `pending` (due at `nextAttemptAt`), `delivered`, `failed`
    (retries exhausted) or `cancelled` (the webhook was removed)."""

    id: Annotated[str, msgspec.Meta(description="The event's webhook-id")]
    type: str
    created_at: Annotated[str, ISO_UTC]
    status: str
    attempt_count: int
    attempts: Annotated[list[WebhookAttemptEntry], msgspec.Meta(description="Oldest first")]
    next_attempt_at: Annotated[str | None, ISO_UTC] = None
    delivered_at: Annotated[str | None, ISO_UTC] = None


class WebhookDeliveryPage(msgspec.Struct, rename="camel", omit_defaults=True):
    """Newest first. Pass `nextCursor` as `cursor` for the next (older) page."""

    events: list[WebhookEventEntry]
    next_cursor: str | None = None
